"""The cameras tests' deck: a sensor; served by the dev host (CAM_HOST=dev) or ivoryos_plugin.run."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_deck import Sensor  # noqa: E402

sensor = Sensor()

if __name__ == "__main__":
    from camera_plugin import plugin as cams_plugin

    port = int(os.environ["PORT"])
    if os.environ.get("CAM_HOST") == "dev":
        from ivoryos_plugin import create_app
        from ivoryos_plugin.hosts.devhost import serve

        app = create_app([cams_plugin], deck=sys.modules[__name__], token=os.environ["CAM_TOKEN"])
        serve(app, port=port)
    else:
        import ivoryos_plugin

        ivoryos_plugin.run(__name__, plugins=[cams_plugin], port=port)
