"""Isolation at registration (:func:`isolate_registration`): a plugin that raises while the host
registers it (its ``init_socketio``, a deferred setup function, an endpoint collision) fails alone:
what it added is taken back (:class:`_Snapshot`), its routes answer 503 behind the request guards,
and the health page lists it as failed with the stage, the reason and the traceback."""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Dict, List, Optional

from flask import Blueprint, Flask, Response

from ...core import names
from ...runtime.attach import attach
from ...runtime.extension import KEY
from ...runtime.libraries import HOOK_TABLES, hook_table
from ...runtime.replies import error_response
from ...runtime.security import guard_request
from .. import ivoryos as adapter
from .failures import Failure, _fail

log = logging.getLogger("ivoryos_plugin")


class _Snapshot:
    """What an app holds before a plugin registers: enough to take back what the plugin added
    if its registration raises (its hooks, its blueprints) and to find the URL rules it added."""

    def __init__(self, app: Flask) -> None:
        self.endpoints = set(app.view_functions)
        self.rules = {id(rule) for rule in app.url_map.iter_rules()}
        self.blueprints = dict(app.blueprints)
        self.attached = KEY in app.extensions
        self.hooks = {table: {key: list(funcs) for key, funcs in hook_table(app, table).items()}
                      for table in HOOK_TABLES}
        self.errors = {key: {code: dict(handlers) for code, handlers in by_code.items()}
                       for key, by_code in app.error_handler_spec.items()}

    def roll_back(self, app: Flask, unavailable: Callable[[], Any]) -> List[str]:
        """Take back the hooks and blueprints the failed registration added; point the endpoints it
        added at ``unavailable``. Returns those endpoints.

        :param app: the app.
        :param unavailable: the view that answers 503 in their place."""
        for table in HOOK_TABLES:
            current = hook_table(app, table)
            for key in list(current):
                if key is None and not self.attached:
                    continue  # the framework attached itself meanwhile: its app-wide hooks stay
                before = self.hooks[table].get(key)
                if before is None:
                    del current[key]
                else:
                    current[key][:] = before
        for key in list(app.error_handler_spec):
            if key in self.errors:
                app.error_handler_spec[key].clear()
                app.error_handler_spec[key].update({c: dict(h) for c, h in self.errors[key].items()})
            else:
                del app.error_handler_spec[key]
        for name in [n for n in app.blueprints if n not in self.blueprints]:
            del app.blueprints[name]
        added = sorted({rule.endpoint for rule in app.url_map.iter_rules()
                        if id(rule) not in self.rules and rule.endpoint not in self.endpoints}
                       | (set(app.view_functions) - self.endpoints))
        for endpoint in added:
            app.view_functions[endpoint] = unavailable
        return added


def _unavailable_view(name: str, failure: Failure) -> Callable[..., Response]:
    """The view that answers, in place of each route of a plugin whose registration failed: the
    request guards first (login), then 503 with the reason."""
    message = (f"Plugin {name!r} failed to load at its {failure.stage} stage ({failure.error}), so it is not "
               "served; the health page /ivoryos/plugins/ shows the traceback. Fix the plugin or uninstall it.")

    def unavailable(**_: Any) -> Response:
        refused = guard_request(name, public=False)
        return refused if refused is not None else error_response(503, message, failed=failure.stage)

    unavailable.__name__ = f"{name}_unavailable"
    return unavailable


def _fail_registration(app: Flask, blueprint: Blueprint, options: Dict[str, Any], failure: Failure,
                       snapshot: Optional[_Snapshot]) -> None:
    """Take a plugin that failed while the host registered it out of service: what it added is
    taken back, its routes (and the endpoint IvoryOS's nav links to) answer 503, and the health page
    lists it as failed, with the stage, the reason and the traceback."""
    name = blueprint.name
    unavailable = _unavailable_view(name, failure)
    snapshot = snapshot or _Snapshot(app)
    owner = snapshot.blueprints.get(name)
    ext = attach(app)
    if owner is blueprint:  # registered twice on one app: the first registration serves it
        log.warning("plugin %r is registered twice; the second registration was ignored: %s", name, failure.error)
        return
    snapshot.roll_back(app, unavailable)
    if owner is None:  # the name is the plugin's, not another blueprint's: IvoryOS's nav link must work
        prefix = (options.get("url_prefix") or f"{app.config.get('URL_PREFIX', '/ivoryos')}/{name}").rstrip("/")
        needed = names.required_endpoint(getattr(blueprint, "plugin_type", "tab"))
        if f"{name}.{needed}" not in app.view_functions:
            rule = "/" if needed == "main" else "/widget"
            app.add_url_rule(prefix + rule, endpoint=f"{name}.{needed}", view_func=unavailable)
    if ext.plain.get(name) is blueprint:
        del ext.plain[name]
    runtime = ext.runtimes.get(name)
    if runtime is not None and runtime.plugin is blueprint:
        del ext.runtimes[name]
        runtime.suspend(f"failed to register: {failure.error}", "failed", failure.traceback)
        runtime.stop()
    ext.failures.append(failure.as_dict())
    log.error("plugin %r failed at %s and is not served: %s", name, failure.stage, failure.error)
    print(f" * plugin {name!r} not loaded ({failure.stage}): {failure.error}; the others are served; its traceback: "
          "the health page /ivoryos/plugins/", file=sys.stderr, flush=True)


def isolate_registration(blueprint: Blueprint, source: str = "") -> Blueprint:
    """Make a plugin's failures while the host registers it (an ``init_socketio`` that raises, a
    deferred setup function that raises, an endpoint collision) its own: the exception never
    reaches IvoryOS's ``load_plugins`` loop, the plugin is listed as failed on the health page
    (stage ``"init_socketio"`` or ``"register"``, the reason, the traceback) exactly as a plugin
    that fails to import, what it half-registered is taken back or answers 503, and the other
    plugins are served. Wraps ``register`` and ``init_socketio`` on the instance; idempotent.

    :param blueprint: a plugin (a :class:`Plugin` or a plain Blueprint).
    :param source: where it comes from (``module:attribute (distribution version)``), for the report.
    :returns: the same blueprint."""
    if getattr(blueprint, "_ivoryos_plugin_isolated", False):
        return blueprint
    name = blueprint.name
    register = blueprint.register
    init = getattr(blueprint, "init_socketio", None)
    failed: List[Failure] = []

    if callable(init):
        def init_socketio(socketio: Any) -> None:
            handlers = adapter.default_namespace_handlers(socketio)
            before = dict(handlers)
            try:
                init(socketio)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                handlers.clear()  # the handlers it added before raising are taken back
                handlers.update(before)
                failed.append(_fail(name, "init_socketio", exc, source))

        setattr(blueprint, "init_socketio", init_socketio)

    def isolated(app: Any, options: Dict[str, Any]) -> None:
        if options.get("name_prefix") or options.get("name", name) != name or not isinstance(app, Flask):
            register(app, options)  # nested in another blueprint, or a scratch app's probe: not isolated
            return
        if failed:  # its init_socketio raised: nothing of it is registered
            _fail_registration(app, blueprint, options, failed.pop(), None)
            return
        snapshot = _Snapshot(app)
        try:
            register(app, options)
        except BaseException as exc:  # a setup function may even call sys.exit
            if isinstance(exc, KeyboardInterrupt):
                raise
            _fail_registration(app, blueprint, options, _fail(name, "register", exc, source), snapshot)

    setattr(blueprint, "register", isolated)
    setattr(blueprint, "_ivoryos_plugin_isolated", True)
    return blueprint
