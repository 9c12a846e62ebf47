"""The framework's own blueprint ``plugins`` at ``/ivoryos/plugins/``: the health page,
``status.json``, worker restarts, and the browser assets (``ivoryos_plugin.js``, vendor/)."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for

from .security import guard_request, harden_response

HERE = os.path.dirname(os.path.abspath(__file__))

class FrameworkBlueprint(Blueprint):
    """The ``plugins`` blueprint. Registered first (by ``ivoryos_plugin.run``, or by the first
    plugin), it attaches the framework to the app and protects plain Blueprint plugins."""

    plugin_type = "tab"  # IvoryOS's nav shows it as a tab: "Plugins"

    def configure(self, plugins: List[Blueprint], failures: List[Dict[str, str]]) -> None:
        """Tell the blueprint, before ``ivoryos.run`` registers it, what else is loaded.

        :param plugins: the plugins about to be registered (plain ones get the safety baseline).
        :param failures: the discovery report's failures, for the health page."""
        self._pending = (list(plugins), list(failures))

    def register(self, app: Any, options: Dict[str, Any]) -> None:  # Any: Flask's sansio App
        """Flask's hook: register, attach the framework, protect the pending plain Blueprints.

        :param app: the app.
        :param options: the registration options."""
        from .discovery import protect_plain
        from .extension import attach
        from .plugin import Plugin

        super().register(app, options)
        ext = attach(app)
        plugins, failures = getattr(self, "_pending", ([], []))
        self._pending = ([], [])
        ext.failures.extend(failures)
        for blueprint in plugins:
            if not isinstance(blueprint, Plugin):
                protect_plain(app, blueprint)


framework_blueprint = FrameworkBlueprint("plugins", __name__, static_folder=os.path.join(HERE, "static"),
                                         static_url_path="/static", template_folder="templates")


@framework_blueprint.before_request
def _guard() -> Optional[Response]:
    if request.endpoint == "plugins.static":
        return None  # library code, needed by public plugin pages too
    return guard_request("plugins", public=False)


@framework_blueprint.after_request
def _harden(response: Response) -> Response:
    if request.endpoint == "plugins.static":
        response.headers["Cache-Control"] = "no-cache"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
    return harden_response(response, None)


def status() -> Dict[str, Any]:
    """Every plugin's state, workers, streams and log tail, plus the plugins that failed to load."""
    from .extension import current_extension

    ext = current_extension()
    plain: List[Dict[str, Any]] = [{"name": name, "title": name.capitalize(), "version": "", "state": "running", "reason": "",
              "plain_blueprint": True, "url": f"{ext.url_prefix}/{name}/", "workers": {}, "streams": {},
              "log": [], "traceback": "", "settings_url": None, "actions": []} for name in ext.plain]
    return {"plugins": [rt.status() for rt in ext.runtimes.values()] + plain,
            "failures": list(ext.failures), "started": ext.started}


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


@framework_blueprint.route("/")
def main() -> str:
    """The health page: each plugin's state and why, workers, streams, logs, failures."""
    from .extension import current_extension

    return render_template("ivoryos_plugin/health.html", status=status(),
                           plugin_base=current_extension().base_template)


@framework_blueprint.route("/status.json")
def status_json() -> Response:
    """The health page's data as JSON."""
    return jsonify(status())


@framework_blueprint.route("/<plugin>/workers/<worker>/restart", methods=["POST"])
def restart_worker(plugin: str, worker: str) -> Any:
    """Restart a suspended (or stopped) worker: JSON for programs, back to the page for the button.

    :param plugin: the plugin's name.
    :param worker: the worker's name."""
    from .extension import current_extension

    runtime = current_extension().runtimes.get(plugin)
    runner = runtime.workers.get(worker) if runtime is not None else None
    if runtime is None or runner is None:
        known = sorted(runtime.workers) if runtime is not None else []
        return _error(404, f"Plugin {plugin!r} has no worker {worker!r}; workers: {', '.join(known) or 'none'}.")
    if runtime.state != "running":
        return _error(409, f"Plugin {plugin!r} is {runtime.state} ({runtime.reason}); its worker {worker!r} "
                           "cannot be restarted until the plugin runs again.")
    restarted = runner.start()
    if restarted:
        runtime.plugin.logger.info("worker %r restarted from the health page", worker)
    if request.accept_mimetypes.best == "application/json" or request.is_json:
        return jsonify({"worker": worker, "restarted": restarted, **runner.status()})
    return redirect(url_for("plugins.main"))


@framework_blueprint.route("/csrf.json")
def csrf_json() -> Response:
    """A CSRF token for programs that log in with a session (bearer-token programs need none)."""
    from flask_wtf.csrf import generate_csrf

    return jsonify({"csrf_token": generate_csrf()})
