"""Several left-panel plugins, all reachable. IvoryOS's ``base.html`` shows one left panel: an iframe
of the *first* ``plugin_type = 'left_panel'`` plugin's ``widget`` endpoint (verified on 1.6.4,
1.6.14 and 1.7.2); the others are unreachable. Under ``ivoryos_plugin.run`` the framework's own
left-panel plugin comes first and holds every left-panel plugin's widget in a collapsible section;
under plain ``ivoryos.run`` the health page warns about the hidden ones.

IvoryOS 1.x has no right panel: a ``placement="right_panel"`` plugin (ivoryos-edge's ``panel-right``)
is a left panel there, always shown as a section of the combined panel under ``ivoryos_plugin.run``,
and its registration logs a warning naming it (also on the health page)."""
from __future__ import annotations

import logging
import os
from typing import List, Optional, Sequence

from flask import Blueprint, Flask, Response, render_template, url_for
from werkzeug.routing import BuildError

from ..runtime.extension import Extension
from ..runtime.security import guard_request, harden_response

NAME = "plugin_panels"
#: what the edge host names its apps (``ext.host_name``, hosts/edge/runtime_app.py): it has a right panel
EDGE_HOST_NAME = "ivoryos-edge"
PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
log = logging.getLogger("ivoryos_plugin")


def left_panels(blueprints: Sequence[Blueprint]) -> List[str]:
    """The names of the left-panel plugins among ``blueprints``, in order (IvoryOS shows the first).

    :param blueprints: the plugins, in the order IvoryOS registers them."""
    return [b.name for b in blueprints if getattr(b, "plugin_type", "tab") == "left_panel" and b.name != NAME]


def right_panels(blueprints: Sequence[Blueprint]) -> List[str]:
    """The names of the ``placement="right_panel"`` plugins among ``blueprints``, in order.

    :param blueprints: the plugins."""
    return [b.name for b in blueprints if getattr(b, "placement", None) == "right_panel"]


def right_panel_warning(name: str) -> str:
    """What a right-panel plugin's registration on IvoryOS 1.x says.

    :param name: the plugin's name."""
    return (f"Plugin {name!r}: placement='right_panel' is ivoryos-edge's right panel; IvoryOS 1.x has no right "
            "panel, so it is shown as a left-panel section here (the combined left panel of ivoryos_plugin.run; "
            "plain ivoryos.run shows only the first left panel). Use placement='left_panel' to say so, or serve it "
            "on ivoryos-edge (docs/edge.md).")


def warn_right_panel(name: str, ext: Extension) -> None:
    """Log (and show on the health page) that a right-panel plugin is a left panel on this host; the
    edge host's apps, which have a right panel, say nothing.

    :param name: the plugin's name.
    :param ext: the framework state of the app it registers on."""
    if ext.host_name == EDGE_HOST_NAME:
        return
    message = right_panel_warning(name)
    log.warning("%s", message)
    ext.record_warning(name, message)


def _title(blueprint: Blueprint) -> str:
    return str(getattr(blueprint, "title", "") or blueprint.name.replace("_", " ").capitalize())


def widget_url(name: str) -> Optional[str]:
    """Where a left-panel plugin's widget is: ``url_for(name + '.widget')``, as IvoryOS's own
    ``base.html`` links it (verified on 1.7.2), whatever the view's route (``/widget``, ``/``...);
    None when the plugin has no ``widget`` endpoint.

    :param name: the plugin's name."""
    try:
        return url_for(f"{name}.widget")
    except BuildError:
        return None


def panels_blueprint(blueprints: Sequence[Blueprint]) -> Blueprint:
    """A left-panel plugin whose widget holds each of ``blueprints``' widgets in a collapsible
    section (an iframe of the plugin's ``widget`` endpoint, found by ``url_for`` as IvoryOS finds
    it, so each widget keeps its own page and guard).

    :param blueprints: the left-panel plugins, in order."""
    sections = [{"name": b.name, "title": _title(b), "placement": getattr(b, "placement", "left_panel")}
                for b in blueprints]
    panel = Blueprint(NAME, __name__, template_folder=os.path.join(PACKAGE, "templates"))
    panel.plugin_type = "left_panel"  # type: ignore[attr-defined]

    @panel.before_request
    def _guard() -> Optional[Response]:
        return guard_request("plugins", public=False)

    @panel.after_request
    def _harden(response: Response) -> Response:
        return harden_response(response, None)

    @panel.route("/widget")
    def widget() -> str:
        shown = [{**section, "url": widget_url(section["name"])} for section in sections]
        return render_template("ivoryos_plugin/panels.html", sections=shown)

    return panel


def blueprints_for(plugins: Sequence[Blueprint]) -> List[Blueprint]:
    """``[panels_blueprint(...)]`` when two or more of ``plugins`` are left panels or one is a right
    panel (a section of the left panel on IvoryOS 1.x), else ``[]``.

    :param plugins: the plugins about to be loaded."""
    names = left_panels(plugins)
    if len(names) < 2 and not right_panels(plugins):
        return []
    return [panels_blueprint([p for p in plugins if p.name in names])]


def startup_line(plugins: Sequence[Blueprint]) -> str:
    """What ``ivoryos_plugin.run`` says of the combined left panel (when :func:`blueprints_for` makes one).

    :param plugins: the plugins about to be loaded."""
    names = left_panels(plugins)
    line = (f"left-panel plugins {', '.join(names)} share one panel, a section each "
            f"(ivoryos.run: shows only {names[0]!r}).")
    right = right_panels(plugins)
    if right:
        line += (f" Right-panel plugin(s) {', '.join(right)} are sections of it: IvoryOS 1.x has no right panel "
                 "(ivoryos-edge shows them on the right).")
    return line


def warn_hidden(app: Flask, ext: Extension) -> None:
    """Under plain ``ivoryos.run``: a health-page warning (and a log line) for each left-panel
    plugin IvoryOS does not show, once every plugin is registered.

    :param app: IvoryOS's app.
    :param ext: its framework state."""
    if NAME in app.blueprints:
        return
    names = left_panels([b for b in app.blueprints.values() if isinstance(b, Blueprint)])
    for name in names[1:]:
        message = (f"IvoryOS shows only the first left-panel plugin ({names[0]!r}), so this one is unreachable; "
                   "start IvoryOS with ivoryos_plugin.run(...), which shows every left-panel plugin in one panel, "
                   "or make it a tab (placement='tab').")
        log.warning("plugin %r: %s", name, message)
        ext.record_warning(name, message)
