"""``ivoryos_plugin.run``: discover installed plugins, harden IvoryOS's defaults, call ``ivoryos.run``."""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from flask import Blueprint

from ..core.names import PluginError
from ..runtime.attach import framework_blueprint
from ..runtime.files import atomic_write
from . import ivoryos as adapter
from .discovery import check_plugin, discover, protect_plain
from .ivoryos import PUBLIC_DEFAULT_KEY, default_admin_active

log = logging.getLogger("ivoryos_plugin")
SECRET_FILE = "secret_key"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (127.0.0.0/8, ::1, localhost).

    :param host: the address to bind."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def persistent_secret_key(folder: Path) -> str:
    """A random secret key kept in ``folder/secret_key`` (mode 0600), created on first use, so
    sessions survive a restart without the key ever being a public constant.

    :param folder: the plugins' data folder."""
    folder = Path(folder)
    path = folder / SECRET_FILE
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    atomic_write(path, key, mode=0o600)
    return key


def data_folder(config: Any) -> Path:
    """The plugins' data folder: ``$IVORYOS_PLUGIN_DATA`` or ``<OUTPUT_FOLDER>/plugins``.

    :param config: an IvoryOS ``Config`` instance."""
    return Path(os.environ.get("IVORYOS_PLUGIN_DATA") or Path(config.OUTPUT_FOLDER) / "plugins")


def harden(config: Any, host: str, debug: bool = False) -> List[str]:
    """Fix IvoryOS's unsafe defaults on ``config`` and return the warnings to print.

    - ``SECRET_KEY``: IvoryOS's public default is replaced by a random key kept in the data folder.
    - ``DEBUG``: off unless asked (the Werkzeug debugger runs code for whoever reaches it).
    - A non-loopback ``host`` while admin/admin is still valid gives a loud warning.

    :param config: an IvoryOS ``Config`` instance (changed in place).
    :param host: the address IvoryOS will bind.
    :param debug: whether the caller asked for debug mode."""
    warnings: List[str] = []
    if getattr(config, "SECRET_KEY", None) in (PUBLIC_DEFAULT_KEY, None, ""):
        config.SECRET_KEY = persistent_secret_key(data_folder(config))
    config.DEBUG = bool(debug)
    if debug and not is_loopback(host):
        warnings.append(f"WARNING: debug=True on {host}: the Werkzeug debugger lets anyone on the network run "
                        "code on this machine. Use debug only with host='127.0.0.1'.")
    if not is_loopback(host) and default_admin_active(config):
        bar = "!" * 78
        warnings.append(
            f"{bar}\nWARNING: IvoryOS listens on {host} (reachable from the network) and the account "
            "admin/admin is still valid:\nanyone on the network can log in and run your instruments. "
            "Change the admin password (IvoryOS > account > change password) or bind to "
            f"host='127.0.0.1'.\n{bar}")
    return warnings


def check_given(plugins: Sequence[Blueprint]) -> List[Blueprint]:
    """Check plugins passed explicitly to :func:`run`; a mistake there is the caller's, so it raises.

    :param plugins: the plugins.
    :raises PluginError: a name is invalid, reserved or given twice, or a nav endpoint is missing."""
    seen: Dict[str, Blueprint] = {}
    for plugin in plugins:
        check_plugin(plugin)
        if plugin.name in seen and seen[plugin.name] is not plugin:
            raise PluginError(plugin.name, "two different plugins have this name; rename one.")
        seen[plugin.name] = plugin
    return list(seen.values())


def run(module: Optional[str] = None, plugins: Optional[Sequence[Blueprint]] = None, *,
        host: str = "127.0.0.1", port: Optional[int] = None, debug: bool = False,
        config: Any = None, exclude: Optional[Sequence[str]] = None, **ivoryos_kwargs: Any) -> None:
    """Start IvoryOS with plugins: discovered (unless given), each loaded in isolation, hardened.

    A discovered plugin that fails to import or check is left out and named (with its traceback)
    on the health page ``/ivoryos/plugins/``; the others and IvoryOS start normally.

    :param module: the deck script's ``__name__`` (its globals are the instruments), as for ivoryos.run.
    :param plugins: the plugins; None discovers every installed ``ivoryos.plugins`` entry point.
    :param host: the address to bind; loopback by default (``"0.0.0.0"`` exposes it to the network).
    :param port: the port (IvoryOS's default: ``$PORT`` or 8000).
    :param debug: the Werkzeug debugger; off unless you ask (it executes code for whoever reaches it).
    :param config: an IvoryOS Config instance (defaults to ``ivoryos.config.get_config()``).
    :param exclude: names of discovered plugins to leave out.
    :param ivoryos_kwargs: passed to ``ivoryos.run`` (``logger``, ``enable_design``...).
    :raises PluginError: a plugin given in ``plugins`` is unusable (discovered ones never raise).

    Example::

        # my_deck.py
        balance = Balance("/dev/ttyUSB0")
        if __name__ == "__main__":
            import ivoryos_plugin
            ivoryos_plugin.run(__name__)
    """
    if os.environ.get("IVORYOS_ACTIVE"):
        log.warning("IVORYOS_ACTIVE is set: ivoryos.run will return at once (unset it to start IvoryOS).")
    failures: List[Dict[str, str]] = []
    if plugins is None:
        found = discover(exclude=list(exclude or []))
        plugins, failures = found.plugins, [f.as_dict() for f in found.failures]
        for failure in failures:
            print(f" * plugin {failure['name']!r} not loaded ({failure['stage']}): {failure['error']}",
                  file=sys.stderr, flush=True)
        if failures:
            print(" * their tracebacks: the health page /ivoryos/plugins/; checks: ivoryos-plugin check --installed",
                  file=sys.stderr, flush=True)
    else:
        plugins = check_given([p for p in plugins if p.name not in set(exclude or [])])
    config = config or adapter.get_config()
    for line in harden(config, host, debug):
        print(line, file=sys.stderr, flush=True)
    framework_blueprint.configure(plugins=list(plugins), failures=failures, protect=protect_plain)
    print(f" * ivoryos_plugin: {len(plugins)} plugin(s): {', '.join(p.name for p in plugins) or 'none'}",
          flush=True)
    adapter.run(module, host=host, port=port, debug=debug, config=config,
                blueprint_plugins=[framework_blueprint, *plugins], **ivoryos_kwargs)
