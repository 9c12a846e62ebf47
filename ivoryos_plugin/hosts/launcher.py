"""``ivoryos_plugin.run``: discover installed plugins, harden IvoryOS's defaults, call ``ivoryos.run``."""
from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from flask import Blueprint

from ..core.names import PluginError
from ..core.plugin import Plugin
from ..runtime.attach import IvoryOSPlugins
from ..runtime.process import stop_on_sigterm
from ..runtime.files import atomic_write
from . import demomode, hardening
from .allocator import steady_allocator
from .cookie_sessions import keep_unchanged_sessions
from . import ivoryos as adapter
from . import panels
from .discovery import check_plugin, isolate_registration, protect_plain
from .discovery import discover as discover_plugins
from .drain import PiecewiseRequestHandler
from .ivoryos import PUBLIC_DEFAULT_KEY, default_admin_active

log = logging.getLogger("ivoryos_plugin")
SECRET_FILE = "secret_key"


def is_loopback(address: str) -> bool:
    """Whether listening on ``address`` keeps the server on this machine (127.0.0.0/8, ::1, localhost).

    :param address: the address to bind."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
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


def harden(config: Any, bind: str, debug: bool = False) -> List[str]:
    """Fix IvoryOS's unsafe defaults on ``config`` and return the warnings to print.

    - ``SECRET_KEY``: IvoryOS's public default is replaced by a random key kept in the data folder.
    - ``DEBUG``: off unless asked (the Werkzeug debugger runs code for whoever reaches it).
    - A non-loopback ``bind`` address while admin/admin is still valid gives a loud warning.

    :param config: an IvoryOS ``Config`` instance (changed in place).
    :param bind: the address IvoryOS will listen on (``ivoryos.run``'s ``host``).
    :param debug: whether the caller asked for debug mode."""
    warnings: List[str] = []
    if getattr(config, "SECRET_KEY", None) in (PUBLIC_DEFAULT_KEY, None, ""):
        config.SECRET_KEY = persistent_secret_key(data_folder(config))
    config.DEBUG = bool(debug)
    if debug and not is_loopback(bind):
        warnings.append(f"WARNING: debug=True on {bind}: the Werkzeug debugger lets anyone on the network run "
                        "code on this machine. Use debug only with host='127.0.0.1'.")
    if not is_loopback(bind) and default_admin_active(config):
        bar = "!" * 78
        warnings.append(
            f"{bar}\nWARNING: IvoryOS listens on {bind} (reachable from the network) and the account "
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


def _as_list(blueprints: Union[None, Blueprint, Sequence[Blueprint]]) -> List[Blueprint]:
    """IvoryOS's ``blueprint_plugins``: one Blueprint or a list of them."""
    if blueprints is None:
        return []
    if isinstance(blueprints, Blueprint):
        return [blueprints]
    return list(blueprints)


def _say(line: str) -> None:
    print(f" * ivoryos_plugin: {line}", file=sys.stderr, flush=True)


def gather(given: List[Blueprint], discover: bool, exclude: Sequence[str]) -> Tuple[List[Blueprint], List[Dict[str, str]]]:
    """The plugins to load: the given ones, then the installed ones (unless ``discover`` is false);
    a given plugin wins over an installed one of the same name (one printed line says so).

    :param given: the plugins passed to :func:`run` (checked: a mistake raises).
    :param discover: whether to add the installed ``ivoryos.plugins`` entry points.
    :param exclude: names of installed plugins to leave out.
    :returns: the plugins and the failures of installed ones (for the health page)."""
    plugins = check_given([p for p in given if p.name not in set(exclude)])
    if not discover:
        return plugins, []
    found = discover_plugins(exclude=list(exclude))
    names = {p.name: p for p in plugins}
    for plugin in found.plugins:
        if plugin.name not in names:
            plugins.append(plugin)
        elif names[plugin.name] is not plugin:
            _say(f"plugin {plugin.name!r} is given and also installed ({found.sources.get(plugin.name, '')}): "
                 "the given one is loaded.")
    failures = [f.as_dict() for f in found.failures if f.name not in names]
    for failure in failures:
        print(f" * plugin {failure['name']!r} not loaded ({failure['stage']}): {failure['error']}",
              file=sys.stderr, flush=True)
    if failures:
        print(" * their tracebacks: the health page /ivoryos/plugins/; checks: ivoryos-plugin check --installed",
              file=sys.stderr, flush=True)
    return plugins, failures


def run(module: Optional[str] = None, host: Optional[str] = None, port: Optional[int] = None,
        debug: Optional[bool] = None, llm_server: Optional[str] = None, model: Optional[str] = None,
        config: Any = None, logger: Union[None, str, List[str]] = None, logger_output_name: Optional[str] = None,
        enable_design: bool = True, blueprint_plugins: Union[None, Blueprint, Sequence[Blueprint]] = None,
        exclude_names: Optional[List[str]] = None, notification_handler: Any = None,
        optimizer_registry: Optional[Dict[str, Any]] = None, templates_dir: Optional[str] = "templates", *,
        discover: Optional[bool] = None, plugins: Optional[Sequence[Blueprint]] = None,
        exclude: Optional[Sequence[str]] = None, extension: Optional[IvoryOSPlugins] = None,
        **ivoryos_kwargs: Any) -> None:
    """Start IvoryOS with plugins, a drop-in for ``ivoryos.run``: the same arguments with the same
    meaning, plus the installed plugins, each loaded in isolation, and IvoryOS's defaults hardened.

    What it does differently from ``ivoryos.run`` is printed at start, one line each (the address
    default, the debugger, the secret key, login on plain Blueprint plugins, several left panels);
    docs/migration.md lists them. IvoryOS's own routes, pages and Socket.IO namespace are hardened
    (docs/security.md: each item with its opt-out, a keyword argument here): each item is installed,
    proven, and only then printed; one that cannot be installed or proven stops this call with a
    ``SystemExit`` naming it and its opt-out, before anything listens. An installed plugin that
    fails to import or check is left out and named (with its traceback) on the health page
    ``/ivoryos/plugins/``; the others start normally.

    :param module: the deck script's ``__name__`` (its globals are the instruments), as for ivoryos.run.
    :param host: the address to listen on (``ivoryos.run``'s name for it, kept: this is a drop-in);
        ``127.0.0.1`` when not given (ivoryos.run: ``0.0.0.0``).
    :param port: the port (IvoryOS's default: ``$PORT`` or 8000).
    :param debug: the Werkzeug debugger; off when not given (ivoryos.run: on). It runs code for whoever reaches it.
    :param llm_server: as for ivoryos.run: the design agent's LLM server.
    :param model: as for ivoryos.run: the design agent's model.
    :param config: an IvoryOS Config instance (defaults to ``ivoryos.config.get_config()``).
    :param logger: as for ivoryos.run: logger name(s) shown in IvoryOS.
    :param logger_output_name: as for ivoryos.run: the log file's name.
    :param enable_design: as for ivoryos.run: the designer, database and workflow execution.
    :param blueprint_plugins: as for ivoryos.run: one Blueprint or a list; loaded with the installed plugins.
    :param exclude_names: as for ivoryos.run: deck globals IvoryOS leaves out of its instruments.
    :param notification_handler: as for ivoryos.run.
    :param optimizer_registry: as for ivoryos.run.
    :param templates_dir: as for ivoryos.run: workflow templates imported at start.
    :param discover: add the installed ``ivoryos.plugins`` entry points (default: yes, unless ``plugins=``).
    :param plugins: the framework's older keyword: exactly these plugins, discovery off (printed).
    :param exclude: names of installed plugins to leave out (not even imported).
    :param extension: options of your own for this run's :class:`~ivoryos_plugin.IvoryOSPlugins`
        (``failures`` to show on the health page, ``protect``, ``on_attach`` hooks, called with IvoryOS's
        app after it is hardened; its plain Blueprints go in ``blueprint_plugins``); the run attaches
        IvoryOS's app with a new extension that has them and its own, so nothing of this run stays
        with any other app of the process.
    :param ivoryos_kwargs: further ``ivoryos.run`` arguments of a newer IvoryOS.
    :raises PluginError: a given plugin is unusable (installed ones never raise).
    :raises TypeError: an argument the installed ``ivoryos.run`` does not take, or an ``extension``
        with ``plain`` Blueprints.

    Example::

        # my_deck.py
        balance = Balance("/dev/ttyUSB0")
        if __name__ == "__main__":
            import ivoryos_plugin
            ivoryos_plugin.run(__name__, blueprint_plugins=[my_plugin])
    """
    if os.environ.get("IVORYOS_ACTIVE"):
        log.warning("IVORYOS_ACTIVE is set: ivoryos.run will return at once (unset it to start IvoryOS).")
    options = hardening.take_options(ivoryos_kwargs)  # IvoryOS's own doors: installed, proven, then printed
    accepted = adapter.run_parameters()
    unknown = sorted(set(ivoryos_kwargs) - set(accepted))
    if unknown:
        raise TypeError(f"ivoryos.run (IvoryOS {adapter.installed_version()}) takes no argument {unknown[0]!r}; "
                        f"it takes: {', '.join(accepted)}.")
    own = extension or IvoryOSPlugins()
    if own.plain:
        raise TypeError(f"ivoryos_plugin.run(extension=...) has plain Blueprints ({', '.join(b.name for b in own.plain)}): "
                        "give them in blueprint_plugins=[...], which loads and protects them.")
    if plugins is not None and discover is None:
        discover = False
        _say("discovery is off because plugins= is given (blueprint_plugins= loads the given plugins together "
             "with the installed ones; discover=False turns discovery off).")
    loaded, failures = gather(_as_list(blueprint_plugins) + list(plugins or []), discover is not False,
                              list(exclude or []))
    loaded = [isolate_registration(p) for p in loaded]  # one that raises while IvoryOS registers it fails alone
    bind = host  # the address to listen on; "host" is ivoryos.run's word for it, here only
    if bind is None:
        bind = "127.0.0.1"
        _say("host 127.0.0.1: only this machine can connect (ivoryos.run: 0.0.0.0, the network); "
             "pass host='0.0.0.0' to serve other machines.")
    if debug is None:
        _say("debug off (ivoryos.run: on, with the Werkzeug debugger); pass debug=True to turn it on.")
    config = config or adapter.get_config()
    demo = demomode.is_demo(config)
    if demo:  # before the lines that name logins: demo mode lets every visitor through them
        _say(demomode.startup_line(bind))
    public_key = getattr(config, "SECRET_KEY", None) in (PUBLIC_DEFAULT_KEY, None, "")
    for line in harden(config, bind, bool(debug)):
        print(line, file=sys.stderr, flush=True)
    if public_key:
        _say(f"SECRET_KEY: a random key kept in {data_folder(config) / SECRET_FILE} (ivoryos.run: the public "
             "constant 'default_secret_key'); set env SECRET_KEY to choose one.")
    plain = [p.name for p in loaded if not isinstance(p, Plugin)]
    if plain and demo:
        _say(demomode.plain_line(plain))
    elif plain:
        _say(f"plain Blueprint plugin(s) {', '.join(plain)}: their routes need an IvoryOS login or a bearer "
             "token, and a CSRF token on POST (ivoryos.run: open to anyone).")
    shown = panels.blueprints_for(loaded)
    if shown:
        _say(panels.startup_line(loaded))
    # this run's (IvoryOS attaches its app when it registers the run's blueprint): every per-run hook is here
    framework = IvoryOSPlugins(plain=loaded, failures=[*own.failures, *failures], protect=own.protect or protect_plain)
    print(f" * ivoryos_plugin: {len(loaded)} plugin(s): {', '.join(p.name for p in loaded) or 'none'}",
          flush=True)
    arguments: Dict[str, Any] = dict(
        host=bind, port=port, debug=bool(debug), llm_server=llm_server, model=model, config=config, logger=logger,
        logger_output_name=logger_output_name, enable_design=enable_design, exclude_names=exclude_names,
        notification_handler=notification_handler, optimizer_registry=optimizer_registry,
        templates_dir=templates_dir, **ivoryos_kwargs)
    for name in [n for n in arguments if n not in accepted]:
        if arguments.pop(name) != RUN_DEFAULTS.get(name, object()):
            _say(f"IvoryOS {adapter.installed_version()}'s ivoryos.run takes no {name!r}: left out.")
    if arguments.get("exclude_names") is None:
        arguments.pop("exclude_names", None)
    report: Optional[hardening.Report] = None
    try:
        report = hardening.arm(options, demomode.truthful(_say, hardening.describe(options),
                                                          [item.key for item in hardening.items(options)])
                               if demo else _say, framework)
        framework.hooks.extend(own.hooks)  # the caller's, on the hardened app
        framework.hooks.append(_changed_sessions_only)
        stop_on_sigterm()  # the plugins' on_stop at SIGTERM (a library installs no handler: the program does)
        steadied = steady_allocator()  # why: hosts/allocator.py
        if steadied:
            _say(steadied)
        adapter.use_request_handler(PiecewiseRequestHandler)  # no 10 MB buffer per request: hosts/drain.py
        adapter.run(module, blueprint_plugins=[framework.blueprint(), *shown, *loaded], **arguments)
    except hardening.HardeningError as exc:  # an item that cannot be installed or proven: no server
        raise SystemExit(f" * ivoryos_plugin: {exc}") from None
    finally:
        if report is not None:
            report.armed = False  # ivoryos.run returned: a hook it never ran hardens no other app


def _changed_sessions_only(app: Any, _ext: Any) -> None:
    """IvoryOS's session cookie sent only when the session changed (why: hosts/cookie_sessions.py)."""
    keep_unchanged_sessions(app)


#: ``ivoryos.run``'s defaults (1.7.2) for the arguments an older IvoryOS may lack: left out silently.
RUN_DEFAULTS: Dict[str, Any] = {"llm_server": None, "model": None, "logger": None, "logger_output_name": None,
                                "enable_design": True, "exclude_names": None, "notification_handler": None,
                                "optimizer_registry": None, "templates_dir": "templates"}
