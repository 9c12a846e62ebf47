"""Security round two, serial ports (issue 13, item 1): one registry of open ports keyed by the
real device, whatever the URL says, so the serial console can never open a deck instrument's port
(``spy://``, ``alt://``, another path or link to the same pty); and the console's connect and send
go through the hardware guard, so they never talk over a running workflow.

Against the demo (``ivoryos-plugin demo``: real IvoryOS, the simulated balance on a real pty),
plus the registry itself on real ptys."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import pytest
import requests

from browsing import start_demo
from support import Server, ivoryos_login, wait_until

CONSOLE = "/ivoryos/serial_console"
WORKFLOW = "def workflow():\n" + "    deck.pump.dispense(volume_ml=50)\n" * 8 + "    deck.balance.weigh()\n"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_demo(tmp_path_factory.mktemp("demo_serial"), "--no-browser", env={"CI": "true"})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def session(demo: Server) -> requests.Session:
    return ivoryos_login(demo.base)


def balance_port(demo: Server) -> str:
    found = re.search(r"simulated balance on (\S+)", demo.output())
    assert found, demo.output()
    return found.group(1)


def console(session: requests.Session, demo: Server, action: str, **args: object) -> requests.Response:
    return session.post(f"{demo.base}{CONSOLE}/actions/{action}", json=args, timeout=60)


@pytest.mark.server
def test_the_console_cannot_open_the_balances_port_by_any_name(demo: Server, session: requests.Session,
                                                               tmp_path: Path) -> None:
    port = balance_port(demo)
    link = tmp_path / "another-name-for-the-balance"
    os.symlink(os.path.realpath(port), link)
    names = [port, os.path.realpath(port), str(link), f"alt://{port}?class=PosixPollSerial"]
    # spy:// is refused before the registry is asked (issue 23: the console opens serial ports only)
    refused = [f"spy://{port}?file=/dev/null", f"spy://{os.path.realpath(port)}?file=/dev/null&raw"]
    for url in names + refused:
        reply = console(session, demo, "connect", url=url)
        body = reply.json()
        if reply.status_code == 200:
            console(session, demo, "disconnect")
        if url in refused:
            assert reply.status_code == 400 and "spy://" in body["error"], f"{url}: {reply.status_code} {body}"
        else:
            assert reply.status_code == 409, f"{url}: {reply.status_code} {body}"
            assert "balance" in body["error"] and url in body["error"], body
        assert console(session, demo, "ports").json()["status"]["open"] is False
    weight = session.post(f"{demo.base}/ivoryos/balance/actions/tare", json={}, timeout=30)
    assert weight.status_code == 200, f"the balance no longer answers: {weight.text}"


@pytest.mark.server
def test_the_console_waits_for_a_running_workflow(demo: Server, session: requests.Session) -> None:
    assert console(session, demo, "connect", url="loop://").status_code == 200  # idle: allowed
    try:
        reply = session.post(f"{demo.base}/ivoryos/draft/submit_python", json={
            "workflow_name": "console_guard", "script": WORKFLOW, "prep": "", "cleanup": ""})
        assert reply.status_code == 200, reply.text
        run = session.post(f"{demo.base}/ivoryos/executions/config", json={"repeat": 1},
                           headers={"Accept": "application/json"}, timeout=60)
        assert run.status_code == 200, run.text

        def busy() -> bool:
            return bool(session.get(f"{demo.base}/ivoryos/executions/status").json().get("busy"))

        assert wait_until(busy, 10)
        sent = console(session, demo, "send", line="*IDN?")
        assert sent.status_code == 409 and sent.json()["busy"] is True, sent.text
        assert "serial_console" in sent.json()["error"]
        other = console(session, demo, "disconnect")
        assert other.status_code == 200, "closing the console's own port is always allowed"
        opened = console(session, demo, "connect", url="loop://")
        assert opened.status_code == 409 and opened.json()["busy"] is True, opened.text
        assert wait_until(lambda: not busy(), 60), "the workflow never finished"
        assert session.get(f"{demo.base}/ivoryos/executions/status").json().get("paused") is False
    finally:
        console(session, demo, "disconnect")
    assert console(session, demo, "connect", url="loop://").status_code == 200  # idle again
    assert console(session, demo, "send", line="again").status_code == 200
    console(session, demo, "disconnect")


# ------------------------------------------------------------------ the registry on real ptys
def test_a_port_is_opened_once_whatever_its_url(tmp_path: Path) -> None:
    from ivoryos_plugin import SerialDevice, SerialDeviceError, open_serial
    from ivoryos_plugin.sim import BalanceSimulator

    sim = BalanceSimulator().start()
    first = SerialDevice(sim.port, name="the balance", reconnect=False)
    try:
        link = tmp_path / "link"
        os.symlink(sim.port, link)
        for url in (sim.port, os.path.realpath(sim.port), str(link), f"spy://{sim.port}?file=/dev/null",
                    f"alt://{sim.port}?class=PosixPollSerial"):
            with pytest.raises(SerialDeviceError, match=r"in use by another program; .* held by the balance") as refused:
                SerialDevice(url, reconnect=False, allow=("spy",))  # spy:// needs allow= since issue 23
            assert getattr(refused.value, "holder", None) == "the balance"
            assert open_serial(url, allow=("spy",)) is None
        assert first.query("ID?") == "SIM-BALANCE", "a refused open disturbed the holder"
    finally:
        first.close()
    again = SerialDevice(f"alt://{sim.port}?class=PosixPollSerial", reconnect=False)  # released at close
    try:
        assert again.query("ID?") == "SIM-BALANCE"
    finally:
        again.close()
        sim.stop()
    loops = [SerialDevice("loop://", reconnect=False) for _ in range(2)]  # each loop:// is its own port
    for device in loops:
        device.close()
