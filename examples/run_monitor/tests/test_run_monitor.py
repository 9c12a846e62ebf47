"""The run monitor shows every instrument call live, whoever makes it, and the deck's busy state."""
import threading
import time


def received(live, event, timeout=5.0):
    """Every payload of ``event`` received so far, waiting until at least one arrived."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        got += [m["args"][0] for m in live.get_received(live.namespace) if m["name"] == event]
        if got:
            return got
        time.sleep(0.05)
    return got


def test_pages_render(client):
    page = client.get("/ivoryos/run_monitor/")
    assert page.status_code == 200 and b'id="calls"' in page.data and b"ivp-shell" in page.data
    widget = client.get("/ivoryos/run_monitor/widget")
    assert widget.status_code == 200 and b'id="calls"' in widget.data
    assert b"ivp-shell" not in widget.data, "the widget is an iframe: no nav"
    assert b"ivoryos_plugin.js" in widget.data


def test_calls_from_another_thread_are_shown_live(live, deck):
    live.get_received(live.namespace)
    worker = threading.Thread(target=lambda: deck.counter.bump(by=3))  # as a workflow step would
    worker.start()
    worker.join()
    calls = received(live, "calls")[-1]
    done = [c for c in calls if c["method"] == "bump" and c["phase"] == "end"]
    assert done and done[-1]["kwargs"] == {"by": 3} and done[-1]["result"] == 3
    assert done[-1]["duration"] >= 0


def test_errors_are_shown_and_still_raised(live, deck):
    live.get_received(live.namespace)
    try:
        deck.counter.jam()
    except RuntimeError as exc:
        assert str(exc) == "jammed"
    else:
        raise AssertionError("the instrument's error was swallowed")
    calls = received(live, "calls")[-1]
    assert calls[-1]["method"] == "jam" and "RuntimeError: jammed" in calls[-1]["error"]


def test_busy_state_follows_the_runner_lock(plugin_app, live):
    lock = plugin_app.extensions["ivoryos_plugin"].runner_lock
    live.get_received(live.namespace)
    with lock:
        states = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and {"busy": True} not in states:
            states += received(live, "busy", timeout=0.5)
        assert {"busy": True} in states
    deadline = time.monotonic() + 5
    states = []
    while time.monotonic() < deadline and {"busy": False} not in states:
        states += received(live, "busy", timeout=0.5)
    assert {"busy": False} in states


def test_clear(client, live, deck):
    deck.counter.bump()
    assert client.post("/ivoryos/run_monitor/actions/clear").get_json() == {"cleared": True}
    assert received(live, "calls")[-1] == []


def test_live_stream_reads_are_left_out(live, deck):
    from ivoryos_plugin.hardware.deck import calling_as

    live.get_received(live.namespace)
    with calling_as("plugin:balance stream weight"):  # a dashboard's stream, five times a second
        deck.counter.bump(by=5)
    deck.counter.bump(by=7)  # a workflow step
    calls = received(live, "calls")[-1]
    kwargs = [c["kwargs"] for c in calls if c["method"] == "bump"]
    assert {"by": 7} in kwargs and {"by": 5} not in kwargs
