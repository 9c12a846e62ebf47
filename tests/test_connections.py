"""The live connections' re-authorisation on a clock the test moves: a revoked token's clients are
disconnected at the next sweep, not before, each once; the others stay; the sweeper runs only while
there are connections. (Against real servers, within a second: test_security2_sockets.)"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest
from support import wait_until

from ivoryos_plugin.runtime.connections import SWEEP_S, Connection, Connections
from ivoryos_plugin.runtime.sessions import SessionRegistry
from ivoryos_plugin.runtime.tokens import TokenStore
from ivoryos_plugin.testing import RecordingClock, manual_clock  # noqa: F401  (a fixture)

NS = "/ivoryos/bench"


@dataclass
class Lab:
    """An app's credentials: its real token and session files."""

    tokens: TokenStore
    sessions: SessionRegistry
    dev_token: Optional[str] = None


def sweeping() -> bool:
    """Whether a re-authorisation sweeper runs."""
    return any(t.name == "ivoryos_plugin-reauth" for t in threading.enumerate())


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(TokenStore(tmp_path / "tokens.json"), SessionRegistry(tmp_path / "sessions.json"))


@pytest.fixture
def live(lab: Lab, manual_clock: RecordingClock) -> Iterator[Tuple[Connections, List[Tuple[str, str]]]]:
    """The app's connections on the test's clock, and the clients its transport was told to close."""
    closed: List[Tuple[str, str]] = []
    connections = Connections(lab, lambda namespace, sid: closed.append((namespace, sid)), clock=manual_clock)
    yield connections, closed
    for namespace, sid in [("/", "a"), (NS, "a"), (NS, "b"), (NS, "c")]:
        connections.remove(namespace, sid)
    assert wait_until(lambda: not sweeping(), 5), "the sweeper outlived the last connection"


def test_a_revoked_token_is_disconnected_at_the_next_sweep(lab: Lab, live: Tuple[Connections, List[Tuple[str, str]]],
                                                           manual_clock: RecordingClock) -> None:
    connections, closed = live
    bench, other = lab.tokens.create("bench"), lab.tokens.create("other")
    connections.add(Connection(sid="a", namespace=NS, plugin="bench", token=bench))
    connections.add(Connection(sid="b", namespace=NS, plugin="bench", token=other))
    assert manual_clock.wait_for_waiters(1) and sweeping(), "no sweeper waits while clients are connected"
    lab.tokens.revoke("bench")
    assert closed == [] and connections.get(NS, "a") is not None, "disconnected before the sweep"
    for sweep in range(1, 4):
        manual_clock.advance(SWEEP_S)
        assert wait_until(lambda: len(manual_clock.waited) == sweep + 1, 5), f"sweep {sweep} did not run"
        assert manual_clock.wait_for_waiters(1)
        assert closed == [(NS, "a")], f"not the revoked token's client, once: {closed}"
    assert connections.get(NS, "a") is None and connections.get(NS, "b") is not None and len(connections) == 1
    assert manual_clock.waited == [SWEEP_S] * 4, "not one sweep every SWEEP_S"


def test_a_check_that_fails_disconnects(lab: Lab, live: Tuple[Connections, List[Tuple[str, str]]],
                                        manual_clock: RecordingClock) -> None:
    connections, closed = live
    connections.add(Connection(sid="c", namespace=NS, plugin="bench", token=lab.tokens.create("bench")))
    assert manual_clock.wait_for_waiters(1)
    lab.tokens.path.write_text("{not json")  # a tokens file that cannot be read: safety fails closed
    manual_clock.advance(SWEEP_S)
    assert wait_until(lambda: closed == [(NS, "c")], 5), "a client whose token cannot be checked stays"
    assert wait_until(lambda: not sweeping(), 5), "the sweeper outlived the last connection"


def test_the_sweeper_runs_only_while_there_are_connections(lab: Lab, live: Tuple[Connections, List[Tuple[str, str]]],
                                                           manual_clock: RecordingClock) -> None:
    connections, closed = live
    assert not sweeping()
    connections.add(Connection(sid="a", namespace="/", user="admin", session_id="s1", session_at=0))
    assert manual_clock.wait_for_waiters(1) and sweeping()
    connections.remove("/", "a")  # the last one left: the sweeper ends at once, without waiting for the clock
    assert wait_until(lambda: not sweeping(), 5), "the sweeper runs with no connection"
    assert closed == [] and manual_clock.waited == [SWEEP_S]
