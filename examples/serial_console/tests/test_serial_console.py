"""The serial console talks to a real pty, logs the session, and refuses the deck's own ports."""
import time


def rx_lines(live, timeout=5.0, want=1):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline and len(lines) < want:
        lines += [m["args"][0]["line"] for m in live.get_received(live.namespace) if m["name"] == "rx"]
        time.sleep(0.05)
    return lines


def test_page_lists_ports(client):
    page = client.get("/ivoryos/serial_console/")
    assert page.status_code == 200 and b'id="terminal"' in page.data
    reply = client.post("/ivoryos/serial_console/actions/ports", json={})
    assert reply.status_code == 200 and isinstance(reply.get_json()["ports"], list)


def test_open_send_receive_and_download_the_log(client, live, free_sim):
    opened = client.post("/ivoryos/serial_console/actions/connect",
                         json={"url": free_sim.port, "baudrate": 9600, "terminator": "CRLF"})
    assert opened.status_code == 200, opened.get_json()
    assert opened.get_json()["open"] is True
    try:
        assert client.post("/ivoryos/serial_console/actions/send", json={"line": "ID?"}).status_code == 200
        assert "SIM-BALANCE" in rx_lines(live)
        log_name = opened.get_json()["log"]
        download = client.get(f"/ivoryos/serial_console/sessions/{log_name}")
        assert download.status_code == 200
        text = download.get_data(as_text=True)
        download.close()
        assert ">> ID?" in text and "<< SIM-BALANCE" in text
        again = client.post("/ivoryos/serial_console/actions/connect", json={"url": free_sim.port})
        assert again.status_code == 409 and "close it first" in again.get_json()["error"]
    finally:
        closed = client.post("/ivoryos/serial_console/actions/disconnect", json={})
        assert closed.get_json()["open"] is False


def test_a_port_the_deck_holds_is_refused(client, owned_sim):
    reply = client.post("/ivoryos/serial_console/actions/connect", json={"url": owned_sim.port})
    assert reply.status_code == 409
    assert "instrument 'balance'" in reply.get_json()["error"]


def test_bad_port_and_bad_arguments(client):
    missing = client.post("/ivoryos/serial_console/actions/connect", json={"url": "/dev/does-not-exist"})
    assert missing.status_code == 400 and "/dev/does-not-exist" in missing.get_json()["error"]
    bad = client.post("/ivoryos/serial_console/actions/connect", json={"url": "loop://", "terminator": "XX"})
    assert bad.status_code == 400 and "terminator" in bad.get_json()["errors"]
    nothing_open = client.post("/ivoryos/serial_console/actions/send", json={"line": "x"})
    assert nothing_open.status_code == 409


def test_log_download_needs_login_and_refuses_traversal(anon_client, client):
    assert anon_client.get("/ivoryos/serial_console/sessions/x.log",
                           headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/ivoryos/serial_console/sessions/..%2f..%2fsettings.json").status_code == 404
