"""The run monitor shows every instrument call live, whoever makes it, and the deck's busy state.

Each test runs on both IvoryOS generations through ``plugin_host``: ``[ivoryos]`` (IvoryOS 1.x's
stack) and ``[edge]`` (ivoryos-edge; skipped without the ``[edge]`` extra)."""
import threading
import time


def shown(live, seen, until, timeout=5.0):
    """The latest ``calls`` list received after the first ``seen``, once one satisfies ``until``
    (events arrive one by one: a call's start, then its end)."""
    deadline = time.monotonic() + timeout
    while True:
        fresh = live.received("calls")[seen:]
        if fresh and until(fresh[-1]):
            return fresh[-1]
        assert time.monotonic() < deadline, f"no matching calls list within {timeout} s: {fresh[-1:]}"
        time.sleep(0.02)


def test_pages_render(plugin_host):
    client = plugin_host.client
    page = client.get(plugin_host.url())
    assert page.status_code == 200 and b'id="calls"' in page.data and b"ivp-shell" in page.data
    widget = client.get(plugin_host.url("widget"))
    assert widget.status_code == 200 and b'id="calls"' in widget.data
    assert b"ivp-shell" not in widget.data, "the widget is an iframe: no nav"
    assert b"ivoryos_plugin.js" in widget.data


def test_calls_from_another_thread_are_shown_live(plugin_host, deck):
    live = plugin_host.live
    seen = len(live.received("calls"))
    worker = threading.Thread(target=lambda: deck.counter.bump(by=3))  # as a workflow step would
    worker.start()
    worker.join()
    calls = shown(live, seen, lambda calls: any(c["method"] == "bump" and c["phase"] == "end" for c in calls))
    done = [c for c in calls if c["method"] == "bump" and c["phase"] == "end"]
    assert done and done[-1]["kwargs"] == {"by": 3} and done[-1]["result"] == 3
    assert done[-1]["duration"] >= 0


def test_errors_are_shown_and_still_raised(plugin_host, deck):
    live = plugin_host.live
    seen = len(live.received("calls"))
    try:
        deck.counter.jam()
    except RuntimeError as exc:
        assert str(exc) == "jammed"
    else:
        raise AssertionError("the instrument's error was swallowed")
    calls = shown(live, seen, lambda calls: calls and calls[-1].get("phase") == "end")
    assert calls[-1]["method"] == "jam" and "RuntimeError: jammed" in calls[-1]["error"]


def until_busy_is(live, busy, timeout=5.0):
    """Wait for a ``busy`` event saying ``busy``."""
    deadline = time.monotonic() + timeout
    while {"busy": busy} not in live.received("busy"):
        assert time.monotonic() < deadline, f"no busy={busy} within {timeout} s: {live.received('busy')}"
        time.sleep(0.05)


def test_busy_state_follows_the_runner_lock(plugin_host):
    live = plugin_host.live
    live.received("busy")
    with plugin_host.deck_busy():  # as IvoryOS's runner holds its lock (on the edge: a manual call)
        until_busy_is(live, True)
        seen = len(live.received("busy"))
    deadline = time.monotonic() + 5
    while {"busy": False} not in live.received("busy")[seen:]:
        assert time.monotonic() < deadline, live.received("busy")
        time.sleep(0.05)


def test_clear(plugin_host, deck):
    live = plugin_host.live
    deck.counter.bump()
    shown(live, 0, lambda calls: any(c["method"] == "bump" and c["phase"] == "end" for c in calls))
    seen = len(live.received("calls"))
    assert plugin_host.client.post(plugin_host.url("actions/clear")).get_json() == {"cleared": True}
    assert live.wait_for("calls", count=seen + 1)[seen:][-1] == []


def test_live_stream_reads_are_left_out(plugin_host, deck):
    from ivoryos_plugin.hardware.deck import calling_as

    live = plugin_host.live
    seen = len(live.received("calls"))
    with calling_as("plugin:balance stream weight"):  # a dashboard's stream, five times a second
        deck.counter.bump(by=5)
    deck.counter.bump(by=7)  # a workflow step
    calls = shown(live, seen, lambda calls: any(c["kwargs"] == {"by": 7} and c["phase"] == "end" for c in calls))
    kwargs = [c["kwargs"] for c in calls if c["method"] == "bump"]
    assert {"by": 7} in kwargs and {"by": 5} not in kwargs
