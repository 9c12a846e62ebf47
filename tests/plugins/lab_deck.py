"""A deck written as IvoryOS's example decks are: the instruments are the module's globals. It starts
the lab's template-style plugins (tests/plugins/template_style) one of three ways, as env LAB_DECK
says (tests/test_dropin.py); docs/migration.md shows the first two side by side."""
import os
import sys


class Thermometer:
    """A stand-in thermometer."""

    def read(self) -> float:
        """The temperature, in degrees Celsius."""
        return 21.5


thermometer = Thermometer()


def with_ivoryos(port):
    """The deck as labs have it: plain ivoryos.run with their plugins."""
    import ivoryos
    from lab_pages.camera import camera
    from lab_pages.logbook import logbook
    from lab_pages.monitor import monitor
    from lab_pages.notes import notes
    from lab_pages.stage import stage

    sys.path.insert(0, os.environ["LAB_TEST_PLUGINS"])  # tests/plugins
    from migrated_plugin import plugin as framework_plugin  # one ivoryos_plugin.Plugin: its health page is there

    ivoryos.run(__name__, host="127.0.0.1", port=port, debug=False,
                blueprint_plugins=[monitor, stage, logbook, notes, camera, framework_plugin])


def with_ivoryos_plugin(port):
    """The same kind of deck with the call renamed; the installed plugins (logbook, notes, camera)
    are added to the given ones, and a given plugin wins over an installed one of its name."""
    from flask import Blueprint

    import ivoryos_plugin
    from lab_pages.monitor import monitor
    from lab_pages.stage import stage

    camera = Blueprint("camera", __name__)  # the deck's own camera widget, named as the installed one
    camera.plugin_type = "left_panel"
    camera.add_url_rule("/widget", "widget", lambda: "<!doctype html><p class='widget-text'>The deck's own camera</p>")
    ivoryos_plugin.run(__name__, port=port, blueprint_plugins=[monitor, stage, camera])


def with_one_blueprint(port):
    """``blueprint_plugins`` as one Blueprint, as the official template's README writes it."""
    import ivoryos_plugin
    from lab_pages.monitor import monitor

    ivoryos_plugin.run(__name__, port=port, blueprint_plugins=monitor)


if __name__ == "__main__":
    start = {"plain": with_ivoryos, "list": with_ivoryos_plugin, "single": with_one_blueprint}.get(
        os.environ.get("LAB_DECK", ""))
    if start is not None:
        start(int(os.environ["PORT"]))
