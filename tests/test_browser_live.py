"""A value pushed by the server shows up in a real page, in headless Chromium, inside IvoryOS's
base template and in the dev host's shell (the probe plugin, one server per host kind)."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from browsing import Watch, chromium, offline_context, screenshot
from support import launch
from test_live import PLUGINS, TOKEN, Probe


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture(scope="module", params=["ivoryos", "standalone"])
def probe(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    server = launch((PLUGINS / "probe_deck.py").read_text(), tmp_path_factory.mktemp(f"browser_{request.param}"),
                    name="probe_deck.py", env={"PYTHONPATH": str(PLUGINS), "PROBE_HOST": request.param,
                                               "PROBE_TOKEN": TOKEN, "PROBE_HZ": "5"})
    try:
        yield Probe(server, request.param)
    finally:
        server.stop()


@pytest.mark.browser
def test_pushed_values_reach_the_page(browser: Any, probe: Probe) -> None:
    context = offline_context(browser)
    try:
        page = context.new_page()
        watch = Watch(page)
        if probe.mode == "ivoryos":
            page.goto(f"{probe.base}/ivoryos/auth/login")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", "admin")
            page.keyboard.press("Enter")
            page.wait_for_url("**/ivoryos/")
            page.goto(f"{probe.base}/ivoryos/probe/")
            assert page.locator("nav.navbar").count() == 1, "not inside IvoryOS's base.html"
        else:
            page.goto(f"{probe.base}/ivoryos/probe/?token={TOKEN}")
            assert page.locator("body.ivp-shell").count() == 1, "not inside the dev host's shell"
        page.locator("[data-ivoryos-live-state][data-state=connected]").wait_for()
        value = page.locator("#value")
        page.wait_for_function("document.getElementById('value').textContent !== 'none'")
        first = int(value.text_content())
        page.wait_for_function(f"parseInt(document.getElementById('value').textContent) > {first}")
        probe.action("publish_later", value=2024, delay=0.0)
        page.locator("#note", has_text="2024").wait_for()
        screenshot(page, f"live-probe-{probe.mode}")
        watch.assert_clean(f"the probe page in {probe.mode}")
    finally:
        context.close()
