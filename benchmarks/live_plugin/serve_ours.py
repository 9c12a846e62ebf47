"""Run the ``benchlive`` plugin in the standalone dev host on 127.0.0.1:$PORT (token $TOKEN)."""
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: import live_plugin

from live_plugin import deck, plugin  # noqa: E402

from ivoryos_plugin import create_app  # noqa: E402
from ivoryos_plugin.hosts.devhost import serve  # noqa: E402

if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bench_live_") as data:
        app = create_app([plugin], deck=deck, token=os.environ["TOKEN"], data_dir=data)
        serve(app, port=int(os.environ["PORT"]), quiet=True)
