"""Fan-out through a real Redis: two servers on one queue, and a publisher in another process."""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Iterator, List

import pytest

from support import launch
from test_live import NS, PLUGINS, TOKEN, Probe, close_all


@pytest.fixture(scope="module")
def probes(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[List[Probe]]:
    """An IvoryOS server and a dev host, both on the Redis queue."""
    code = (PLUGINS / "probe_deck.py").read_text()
    servers = []
    try:
        for mode in ("ivoryos", "standalone"):
            server = launch(code, tmp_path_factory.mktemp(f"q_{mode}"), name="probe_deck.py",
                            env={"PYTHONPATH": str(PLUGINS), "PROBE_HOST": mode, "PROBE_TOKEN": TOKEN,
                                 "IVORYOS_PLUGIN_MESSAGE_QUEUE": redis_url})
            servers.append(server)
        yield [Probe(server, mode) for server, mode in zip(servers, ("ivoryos", "standalone"))]
    finally:
        for server in servers:
            server.stop()


@pytest.mark.redis
def test_a_publish_in_one_server_reaches_clients_of_the_other(probes: List[Probe]) -> None:
    ivoryos_probe, dev_probe = probes
    on_ivoryos = ivoryos_probe.client()
    on_dev = dev_probe.client()
    try:
        time.sleep(0.5)
        dev_probe.action("publish_later", value=7, delay=0.0)
        assert on_ivoryos.wait_for("note", timeout=5)[-1] == {"value": 7}
        assert on_dev.wait_for("note", timeout=5)[-1] == {"value": 7}
        ivoryos_probe.action("publish_later", value=8, delay=0.0)
        assert on_dev.wait_for("note", count=2, timeout=5)[-1] == {"value": 8}
    finally:
        close_all([on_ivoryos, on_dev])


@pytest.mark.redis
def test_a_separate_process_publishes_through_the_queue(probes: List[Probe], redis_url: str) -> None:
    viewers = [probe.client() for probe in probes]
    try:
        time.sleep(0.5)
        script = PLUGINS / "acquisition_publisher.py"  # shown in docs/live.md
        done = subprocess.run([sys.executable, str(script), redis_url], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        for viewer in viewers:
            got = viewer.wait_for("note", timeout=5)
            assert got[-1] == {"value": "from-acquisition-pc"}
    finally:
        close_all(viewers)


def test_other_namespaces_do_not_receive_it(probes: List[Probe], redis_url: str) -> None:
    viewer = probes[0].client()
    try:
        from ivoryos_plugin import publisher

        publisher("someone_else", redis_url).publish("note", {"value": "not for probe"})
        time.sleep(1.0)
        assert {"value": "not for probe"} not in viewer.got("note")
        assert NS == "/ivoryos/probe"
    finally:
        close_all([viewer])
