"""``ivoryos_plugin.run``: discover installed plugins, harden IvoryOS's defaults, call ``ivoryos.run``."""
from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from flask import Blueprint

log = logging.getLogger("ivoryos_plugin")
PUBLIC_DEFAULT_KEY = "default_secret_key"  # IvoryOS 1.7.2's Config.SECRET_KEY without env SECRET_KEY
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def persistent_secret_key(folder: Path) -> str:
    """A random secret key kept in ``folder/secret_key`` (mode 0600), created on first use.

    :param folder: the plugins' data folder."""
    path = Path(folder) / "secret_key"
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key


def default_admin_active(output_folder: Path) -> bool:
    """Whether IvoryOS's database still accepts admin/admin (or will create it on first start).

    :param output_folder: IvoryOS's OUTPUT_FOLDER."""
    db = Path(output_folder) / "ivoryos.db"
    if not db.exists():
        return True
    try:
        import bcrypt

        with sqlite3.connect(str(db)) as conn:
            row = conn.execute("SELECT password FROM user WHERE username = 'admin'").fetchone()
    except Exception:
        return False
    if row is None:
        return False
    stored = row[0].encode() if isinstance(row[0], str) else row[0]
    try:
        return bool(bcrypt.checkpw(b"admin", stored))
    except ValueError:
        return False


def harden(config: Any, host: str) -> List[str]:
    """Fix IvoryOS's unsafe defaults on ``config`` and return the warnings to print.

    :param config: an IvoryOS ``Config`` instance (changed in place).
    :param host: the address IvoryOS will bind."""
    warnings: List[str] = []
    output = Path(config.OUTPUT_FOLDER)
    data = Path(os.environ.get("IVORYOS_PLUGIN_DATA") or output / "plugins")
    if getattr(config, "SECRET_KEY", PUBLIC_DEFAULT_KEY) in (PUBLIC_DEFAULT_KEY, None, ""):
        config.SECRET_KEY = persistent_secret_key(data)
    config.DEBUG = False
    if host not in LOOPBACK_HOSTS and default_admin_active(output):
        warnings.append(
            f"WARNING: IvoryOS listens on {host} (reachable from the network) and the account "
            "admin/admin is still valid: anyone on the network can run your instruments. Change the "
            "admin password (IvoryOS > account > change password) or bind to 127.0.0.1.")
    return warnings


def run(module: Optional[str] = None, plugins: Optional[Sequence[Blueprint]] = None, *,
        host: str = "127.0.0.1", port: Optional[int] = None, debug: bool = False,
        config: Any = None, exclude: Optional[Sequence[str]] = None, **ivoryos_kwargs: Any) -> None:
    """Start IvoryOS with plugins: discovered (unless given), isolated, hardened.

    :param module: the deck script's ``__name__`` (its globals are the instruments), as for ivoryos.run.
    :param plugins: the plugins; None discovers every installed ``ivoryos.plugins`` entry point.
    :param host: the address to bind; loopback by default (``"0.0.0.0"`` exposes it to the network).
    :param port: the port (IvoryOS's default 8000).
    :param debug: the Werkzeug debugger; off unless you ask (it executes code for whoever reaches it).
    :param config: an IvoryOS Config instance (defaults to ``ivoryos.config.get_config()``).
    :param exclude: names of discovered plugins to leave out.
    :param ivoryos_kwargs: passed to ``ivoryos.run`` (``logger``, ``enable_design``...).

    Example::

        # my_deck.py
        balance = Balance("/dev/ttyUSB0")
        if __name__ == "__main__":
            import ivoryos_plugin
            ivoryos_plugin.run(__name__)
    """
    from .discovery import discover
    from .health import framework_blueprint

    if os.environ.get("IVORYOS_ACTIVE"):
        log.warning("IVORYOS_ACTIVE is set: ivoryos.run will return at once (unset it to start IvoryOS).")
    failures = []
    if plugins is None:
        found = discover(exclude=list(exclude or []))
        plugins, failures = found.plugins, [f.as_dict() for f in found.failures]
        for failure in failures:
            print(f" * plugin {failure['name']!r} not loaded ({failure['stage']}): {failure['error']}",
                  file=sys.stderr, flush=True)
    from ivoryos.config import get_config

    import ivoryos

    config = config or get_config()
    for line in harden(config, host):
        print(line, file=sys.stderr, flush=True)
    framework_blueprint.configure(plugins=list(plugins), failures=failures)
    print(f" * ivoryos_plugin: {len(plugins)} plugin(s): {', '.join(p.name for p in plugins) or 'none'}",
          flush=True)
    ivoryos.run(module, host=host, port=port, debug=debug, config=config,
                blueprint_plugins=[framework_blueprint, *plugins], **ivoryos_kwargs)
