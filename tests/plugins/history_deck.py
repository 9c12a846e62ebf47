"""The history tests' deck: a sensor; dev host (REC_HOST=dev) or ivoryos_plugin.run."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_deck import Sensor  # noqa: E402

sensor = Sensor()

if __name__ == "__main__":
    from history_plugin import plugin as recorder_plugin

    port = int(os.environ["PORT"])
    if os.environ.get("REC_HOST") == "dev":
        from ivoryos_plugin import create_app
        from ivoryos_plugin.hosts.devhost import serve

        app = create_app([recorder_plugin], deck=sys.modules[__name__], token=os.environ["REC_TOKEN"])
        serve(app, port=port)
    else:
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, plugins=[recorder_plugin], port=port)
