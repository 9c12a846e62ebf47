"""Security round two, start-up (issue 13, item 5): plugins start independently. A plugin whose
``on_start`` blocks delays no other; its own routes answer 503 saying for how long it has been
starting, and so does the health page. Real servers: plain ``ivoryos.run``, ``ivoryos_plugin.run``
and the dev host, each with the red deck and the ``slow`` plugin registered first."""
from __future__ import annotations

import re
import sys
import time
from typing import Iterator

import pytest

from support import ROOT, wait_until

sys.path.insert(0, str(ROOT / "tests" / "plugins"))
from red_harness import RedServer, start_red  # noqa: E402


@pytest.fixture(scope="module", params=["ivoryos", "run", "standalone"])
def red(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedServer]:
    running = start_red(tmp_path_factory.mktemp(request.param), request.param,
                        env={"RED_SLOW": "1", "SLOW_SECONDS": "300"})
    try:
        yield running
    finally:
        running.server.stop()


@pytest.mark.server
def test_a_blocking_on_start_delays_no_other_plugin(red: RedServer) -> None:
    started = time.monotonic()

    def red_answers() -> bool:
        return red.session.get(f"{red.base}/ivoryos/red/", timeout=10).status_code == 200

    assert wait_until(red_answers, 10), (
        f"red, registered after slow, answers {red.session.get(f'{red.base}/ivoryos/red/').status_code}: "
        f"{red.session.get(f'{red.base}/ivoryos/red/', headers={'Accept': 'application/json'}).text[:300]}")
    assert time.monotonic() - started < 10
    assert red.session.post(f"{red.base}/ivoryos/red/actions/record", json={"text": "x"}).status_code == 200
    assert red.session.get(f"{red.base}/ivoryos/redplain/").status_code == 200


@pytest.mark.server
def test_the_blocked_plugin_says_for_how_long_it_has_been_starting(red: RedServer) -> None:
    time.sleep(1.2)
    reply = red.session.get(f"{red.base}/ivoryos/slow/", headers={"Accept": "application/json"})
    assert reply.status_code == 503
    body = reply.json()
    assert body["state"] == "starting" and re.search(r"starting for \d+ s", body["reason"]), body
    assert "slow" in body["error"] and "wait_for_ever" in body["reason"], body
    status = red.plugin_status("slow")
    assert status["state"] == "starting" and re.search(r"starting for \d+ s", status["reason"]), status
    seconds = int(re.search(r"starting for (\d+) s", status["reason"]).group(1))  # type: ignore[union-attr]
    assert seconds >= 1
    page = red.session.get(f"{red.base}/ivoryos/plugins/")
    assert page.status_code == 200 and re.search(r"starting for \d+ s", page.text)
    assert red.plugin_status("red")["state"] == "running"
