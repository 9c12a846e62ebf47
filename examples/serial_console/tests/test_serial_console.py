"""The serial console talks to a real pty, logs the session, and refuses the deck's own ports.

The tests that take ``plugin_host`` run on both IvoryOS generations: ``[ivoryos]`` (IvoryOS 1.x's
stack) and ``[edge]`` (ivoryos-edge; skipped without the ``[edge]`` extra); the IvoryOS-only test (login)
builds its URL from the app it talks to (``plugin_url``)."""
import time

from ivoryos_plugin.testing import plugin_url


def rx_lines(live, timeout=5.0, want=1):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline and len(lines) < want:
        lines = [payload["line"] for payload in live.received("rx")]
        time.sleep(0.05)
    return lines


def test_page_lists_ports(plugin_host):
    client = plugin_host.client
    page = client.get(plugin_host.url())
    assert page.status_code == 200 and b'id="terminal"' in page.data
    reply = client.post(plugin_host.url("actions/ports"), json={})
    assert reply.status_code == 200 and isinstance(reply.get_json()["ports"], list)


def test_open_send_receive_and_download_the_log(plugin_host, free_sim):
    client, live = plugin_host.client, plugin_host.live
    opened = client.post(plugin_host.url("actions/connect"),
                         json={"url": free_sim.port, "baudrate": 9600, "terminator": "CRLF"})
    assert opened.status_code == 200, opened.get_json()
    assert opened.get_json()["open"] is True
    try:
        assert client.post(plugin_host.url("actions/send"), json={"line": "ID?"}).status_code == 200
        assert "SIM-BALANCE" in rx_lines(live)
        log_name = opened.get_json()["log"]
        download = client.get(plugin_host.url(f"sessions/{log_name}"))
        assert download.status_code == 200
        text = download.get_data(as_text=True)
        download.close()
        assert ">> ID?" in text and "<< SIM-BALANCE" in text
        again = client.post(plugin_host.url("actions/connect"), json={"url": free_sim.port})
        assert again.status_code == 409 and "close it first" in again.get_json()["error"]
    finally:
        closed = client.post(plugin_host.url("actions/disconnect"), json={})
        assert closed.get_json()["open"] is False


def test_a_port_the_deck_holds_is_refused(plugin_host, owned_sim):
    reply = plugin_host.client.post(plugin_host.url("actions/connect"), json={"url": owned_sim.port})
    assert reply.status_code == 409
    assert "instrument 'balance'" in reply.get_json()["error"]


def test_bad_port_and_bad_arguments(plugin_host):
    client = plugin_host.client
    missing = client.post(plugin_host.url("actions/connect"), json={"url": "/dev/does-not-exist"})
    assert missing.status_code == 400 and "/dev/does-not-exist" in missing.get_json()["error"]
    bad = client.post(plugin_host.url("actions/connect"), json={"url": "loop://", "terminator": "XX"})
    assert bad.status_code == 400 and "terminator" in bad.get_json()["errors"]
    nothing_open = client.post(plugin_host.url("actions/send"), json={"line": "x"})
    assert nothing_open.status_code == 409


def test_log_download_needs_login(anon_client, plugin):  # IvoryOS 1.x only: the edge has no login
    log = plugin_url(anon_client, plugin, "sessions/x.log")  # built from the app, never written out
    assert anon_client.get(log, headers={"Accept": "application/json"}).status_code == 401


def test_log_download_refuses_traversal(plugin_host):
    assert plugin_host.client.get(plugin_host.url("sessions/..%2f..%2fsettings.json")).status_code == 404
