"""What a lab that leaves IvoryOS running for days sees: a quiet log, nothing left behind."""
from __future__ import annotations

from pathlib import Path

import pytest

from support import ROOT, Viewer, cookie_header, ivoryos_login, launch

PLUGINS = ROOT / "tests" / "plugins"

DECK = """
import os, sys
sys.path.insert(0, {plugins!r})
from probe_deck import Sensor

sensor = Sensor()

if __name__ == "__main__":
    import ivoryos_plugin
    from probe_plugin import plugin

    ivoryos_plugin.run(__name__, plugins=[plugin], port=int(os.environ["PORT"]))
"""


@pytest.mark.server
def test_websocket_clients_that_close_gracefully_leave_no_bad_request_in_the_log(tmp_path: Path) -> None:
    server = launch(DECK.format(plugins=str(PLUGINS)), tmp_path, name="deck.py")
    try:
        session = ivoryos_login(server.base)
        for _ in range(6):
            viewer = Viewer(server.base, "/ivoryos/probe", cookie=cookie_header(session))
            assert viewer.sio.connected
            viewer.close()
        assert session.get(f"{server.base}/ivoryos/plugins/status.json").status_code == 200  # the server still answers
    finally:
        server.stop()
    log = server.output()
    assert "Bad request" not in log and "Bad HTTP/0.9" not in log and " 500 " not in log, log[-3000:]
