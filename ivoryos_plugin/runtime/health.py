"""The framework's own blueprint ``plugins`` at ``/ivoryos/plugins/``: the health page,
``status.json``, worker restarts, and the browser assets (``ivoryos_plugin.js``, vendor/)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from flask import Response, jsonify, redirect, render_template, request, url_for

from flask import Blueprint

from .extension import current_extension
from .replies import error_response, prefers_json
from .security import guard_request, harden_response

def _guard() -> Optional[Response]:
    if request.endpoint == "plugins.static":
        return None  # library code, needed by public plugin pages too
    return guard_request("plugins", public=False)


def _harden(response: Response) -> Response:
    if request.endpoint == "plugins.static":
        response.headers["Cache-Control"] = "no-cache"
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
    return harden_response(response, None)


def status() -> Dict[str, Any]:
    """Every plugin's state, workers, streams and log tail, plus the plugins that failed to load, and
    (under ``ivoryos_plugin.run``) each hardening of IvoryOS: ``{"item", "title", "state": "on" |
    "off" | "failed", "opt_out", "detail"}``, looked at again at each call."""
    ext = current_extension()
    plain: List[Dict[str, Any]] = [{"name": name, "title": name.capitalize(), "version": "", "state": "running", "reason": "",
              "plain_blueprint": True, "url": f"{ext.url_prefix}/{name}/", "workers": {}, "streams": {},
              "log": [], "traceback": "", "settings_url": None, "actions": []} for name in ext.plain]
    return {"plugins": [rt.status() for rt in ext.runtimes.values()] + plain,
            "failures": list(ext.failures), "warnings": list(ext.warnings), "started": ext.started,
            "host": ext.host_name, "deck_guard": {"verified": not ext.gate.problem and ext.gate.lock is not None,
                                                  "problem": ext.gate.problem},
            "hardening": ext.hardening()}


def main() -> str:
    """The health page: each plugin's state and why, workers, streams, logs, failures."""
    return render_template("ivoryos_plugin/health.html", status=status(),
                           plugin_base=current_extension().base_template)


def status_json() -> Response:
    """The health page's data as JSON."""
    return jsonify(status())


def restart_worker(plugin: str, worker: str) -> Any:
    """Restart a suspended (or stopped) worker: JSON for programs, back to the page for the button.

    :param plugin: the plugin's name.
    :param worker: the worker's name."""
    runtime = current_extension().runtimes.get(plugin)
    runner = runtime.workers.get(worker) if runtime is not None else None
    if runtime is None or runner is None:
        known = sorted(runtime.workers) if runtime is not None else []
        return error_response(404, f"Plugin {plugin!r} has no worker {worker!r}; workers: {', '.join(known) or 'none'}.")
    if runtime.state != "running":
        return error_response(409, f"Plugin {plugin!r} is {runtime.state} ({runtime.reason}); its worker {worker!r} "
                           "cannot be restarted until the plugin runs again.")
    restarted = runner.start()
    if restarted:
        runtime.plugin.logger.info("worker %r restarted from the health page", worker)
    if prefers_json() or request.is_json:
        return jsonify({"worker": worker, "restarted": restarted, **runner.status()})
    return redirect(url_for("plugins.main"))


def deck_json() -> Response:
    """Whether a workflow holds the deck, for the pages' ``[data-ivoryos-deck-state]`` badges
    (``ivoryos_plugin.js`` polls it once a second while a live page shows one): ``{"busy": bool,
    "verified": bool, "reason": sentence, "run": {run_id, run_name, step} or null}``. ``verified`` is false when the host's runner lock could
    not be verified (hardware actions are refused then). Its own access-log lines are left out."""
    from .quiet import quiet_access_log

    quiet_access_log()
    ext = current_extension()
    verified = not ext.gate.problem and ext.gate.lock is not None
    busy = ext.deck_busy()
    if not verified:
        reason = f"Hardware actions are refused: cannot verify the deck is idle ({ext.gate.problem})."
    elif busy:
        reason = f"A workflow holds the deck ({ext.host_name}): hardware actions are refused until it ends."
    else:
        reason = "No workflow holds the deck: hardware actions run."
    run = ext.run_context()
    if run is not None:
        run = {key: run.get(key) for key in ("run_id", "run_name", "step")}
    reply = jsonify({"busy": busy, "verified": verified, "reason": reason, "run": run})
    reply.headers["Cache-Control"] = "no-store"
    return reply


def csrf_json() -> Response:
    """A CSRF token for programs that log in with a session (bearer-token programs need none)."""
    from flask_wtf.csrf import generate_csrf

    return jsonify({"csrf_token": generate_csrf()})


def add_health_routes(blueprint: Blueprint) -> None:
    """Put the health page, ``status.json``, worker restarts, ``csrf.json``, ``deck.json`` and the request guards
    on the framework's ``plugins`` blueprint.

    :param blueprint: a ``plugins`` blueprint (:class:`ivoryos_plugin.runtime.attach.FrameworkBlueprint`, one per
        :class:`~ivoryos_plugin.runtime.attach.IvoryOSPlugins`)."""
    blueprint.before_request(_guard)
    blueprint.after_request(_harden)
    blueprint.add_url_rule("/", "main", main)
    blueprint.add_url_rule("/status.json", "status_json", status_json)
    blueprint.add_url_rule("/<plugin>/workers/<worker>/restart", "restart_worker", restart_worker, methods=["POST"])
    blueprint.add_url_rule("/csrf.json", "csrf_json", csrf_json)
    blueprint.add_url_rule("/deck.json", "deck_json", deck_json)
