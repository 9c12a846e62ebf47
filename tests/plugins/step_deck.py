"""A deck for the steps tests: a sensor, and the plate_log plugin's steps (added by the plugin)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "run_monitor"))  # the example, not installed
from probe_deck import Sensor  # noqa: E402

sensor = Sensor()

if __name__ == "__main__":
    from run_monitor.plugin import plugin as monitor_plugin
    from step_plugin import plugin

    port = int(os.environ["PORT"])
    if os.environ.get("STEP_HOST") == "plain":
        import ivoryos

        ivoryos.run(__name__, host="127.0.0.1", port=port, debug=False, blueprint_plugins=[plugin, monitor_plugin])
    else:
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, plugins=[plugin, monitor_plugin], port=port)
