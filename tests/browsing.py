"""Helpers for the browser tests (imported as ``browsing``): the demo as a subprocess, headless
Chromium (Debian's, through Playwright) cut off from the internet as on an offline lab network, and
a watch on each tab that records what failed to load."""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Pattern, Set, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import pytest

from support import ROOT, Server, free_port, start_process

EXE = Path(sys.executable).with_name("ivoryos-plugin")
CHROMIUM = os.environ.get("IVORYOS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
OFF_HOST = re.compile(r"^(https?:)?//(?!127\.0\.0\.1[:/])", re.IGNORECASE)  # anything but our server
SCREENSHOTS = ROOT / "test-output" / "e2e"


def start_demo(folder: Path, *args: str, env: Optional[Dict[str, str]] = None) -> Server:
    """Run ``ivoryos-plugin demo --port <free> ARGS`` in ``folder`` and wait until it listens."""
    assert EXE.exists(), "the ivoryos-plugin console script is not installed"
    port = free_port()
    return start_process([str(EXE), "demo", "--port", str(port), *args], folder, "demo.log", env, port=port)


def offline_context(browser: Any, **options: Any) -> Any:
    """A new browser context in which every request to another host fails, as on a lab network."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    context.route(OFF_HOST, lambda route: route.abort())
    context.set_default_timeout(15000)
    return context


def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (a generator: use it in a fixture)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run ./scripts/install.sh --test (or set IVORYOS_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        pw.stop()


Allowed = Union[str, Pattern[str]]


class Watch:
    """Everything that went wrong in one tab (its frames included): console errors, uncaught
    exceptions, failed requests and HTTP error answers.

    Endings of a page that is left are not failures: a socket.io long-poll or the pages' deck poll
    cut short (``net::ERR_ABORTED``); any request cut short (``net::ERR_ABORTED``) after its frame
    went on to another document (a script the page was still loading when the test opened the next
    page: CI saw IvoryOS's ``run_panel.js`` so, once); a ``blob:`` image cut short (``net::ERR_ABORTED``):
    the page set the ``<img>`` to the next frame before this one loaded (``IvoryPlugin.camera`` under
    load; CI saw it once); and the ``400`` Engine.IO gives a long-poll of a session
    the left page closed as it went (the poll was on its way when the page's socket said goodbye; the
    protocol answers an unknown session so), or that moved to its WebSocket (Engine.IO refuses HTTP
    on an upgraded session; 3 logins in 100 saw it). Only such a session counts: its frame has
    navigated or been detached since the session's first request, or its WebSocket was opened, or
    the page closed it itself (:func:`closed_session`: a refused connect, as on IvoryOS's login
    page). A WebSocket error, or a 400 for a session the page still holds, stays a failure."""

    def __init__(self, page: Any) -> None:
        self.page = page
        #: each problem, with the URL it is about (None: none)
        self.problems: List[Tuple[str, Optional[str]]] = []
        self._cut_short: Dict[int, Tuple[Any, int]] = {}  # index in problems -> (frame, its document then)
        self._asked_in: Dict[Any, Tuple[Any, int]] = {}  # request -> (frame, its document then)
        self._documents: Dict[Any, int] = {}  # frame -> how many documents it has shown
        self._sessions: Dict[str, Tuple[Any, int]] = {}  # Engine.IO sid -> (frame, its document then)
        self._upgraded: Set[str] = set()  # Engine.IO sessions that opened their WebSocket
        self._closed: Set[str] = set()  # Engine.IO sessions the page closed itself
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append((f"uncaught exception: {exc}", None)))
        page.on("requestfailed", self._failed)
        page.on("response", self._response)
        page.on("request", self._request)
        page.on("framenavigated", self._next_document)
        page.on("framedetached", self._next_document)
        page.on("websocket", lambda ws: self._upgraded.add(engineio_sid(ws.url) or ""))

    def _next_document(self, frame: Any) -> None:
        self._documents[frame] = self._documents.get(frame, 0) + 1

    def _request(self, request: Any) -> None:
        closed = closed_session(request)
        if closed:
            self._closed.add(closed)
        try:
            frame = request.frame
        except Exception:  # a request of no frame (a worker's)
            return
        self._asked_in[request] = (frame, self._documents.get(frame, 0))
        sid = engineio_sid(request.url)
        if sid and sid not in self._sessions:
            self._sessions[sid] = (frame, self._documents.get(frame, 0))

    def _left_session(self, url: Optional[str]) -> bool:
        """Whether ``url`` is a long-poll of an Engine.IO session whose document is gone."""
        sid = engineio_sid(url or "")
        if not sid or sid not in self._sessions or "transport=polling" not in (url or ""):
            return False
        if sid in self._upgraded or sid in self._closed:  # a poll still on its way as the session moved
            return True  # to its WebSocket, or as the page closed it
        frame, document = self._sessions[sid]
        return self._documents.get(frame, 0) != document

    def _left_document(self, index: int) -> bool:
        """Whether problem ``index`` is a request cut short whose frame has since shown another document."""
        if index not in self._cut_short:
            return False
        frame, document = self._cut_short[index]
        return self._documents.get(frame, 0) != document

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            where = (msg.location or {}).get("url", "")
            self.problems.append((f"console error: {msg.text} [{where}]",
                                  where if "status of 400" in msg.text else None))

    def _failed(self, request: Any) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" in failure and ("/socket.io/" in request.url
                                         or request.url.split("?")[0].endswith("/plugins/deck.json")):
            return
        if "ERR_ABORTED" in failure and request.url.startswith("blob:"):
            return  # an in-memory image the page replaced before it loaded (the camera helper's next frame)
        if "ERR_ABORTED" in failure and request in self._asked_in:  # left, if its frame moves on (see take)
            self._cut_short[len(self.problems)] = self._asked_in[request]
        self.problems.append((f"request failed: {request.method} {request.url} ({failure})", None))

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.problems.append((f"HTTP {response.status}: {response.request.method} {response.url}",
                                  response.url if response.status == 400 else None))

    def take(self, allowed: Iterable[Allowed] = ()) -> List[str]:
        """The problems so far that match none of ``allowed`` (regexes searched in each line); clears the list.

        :param allowed: the failures this step expects (e.g. the 409 of a refused action)."""
        patterns = [re.compile(a) if isinstance(a, str) else a for a in allowed]
        found = [text for i, (text, url) in enumerate(self.problems)
                 if not self._left_session(url) and not self._left_document(i)
                 and not any(pattern.search(text) for pattern in patterns)]
        self.problems.clear()
        self._cut_short.clear()
        return found

    def assert_clean(self, what: str, allowed: Iterable[Allowed] = ()) -> None:
        """Fail when something on the page failed to load or threw (but what ``allowed`` matches).

        :param what: the page or step, for the message.
        :param allowed: see :meth:`take`."""
        found = self.take(allowed)
        assert not found, f"{what}: " + "\n".join(found)


def closed_session(request: Any) -> Optional[str]:
    """The Engine.IO session a request closes: a long-polling POST carrying the close packet ("1"),
    as socket.io-client sends when the server refused its connect (IvoryOS's login page, whose
    anonymous Socket.IO the guard refuses). The refusal is handed on a later tick, so the transport
    has already sent its next long-poll, and that poll, reaching the server after the close, gets
    python-engineio's 400 ("Session is disconnected"): the page's own ending, nothing it needs.

    :param request: a Playwright request."""
    if request.method != "POST" or "transport=polling" not in request.url:
        return None
    packets = (request.post_data or "").split("\x1e")  # Engine.IO v4 joins a payload's packets with \x1e
    return engineio_sid(request.url) if "1" in packets else None


def engineio_sid(url: str) -> Optional[str]:
    """The Engine.IO session a socket.io URL names (None: not one, or its handshake)."""
    if "/socket.io/" not in url:
        return None
    sids = parse_qs(urlsplit(url).query).get("sid")
    return sids[0] if sids else None


def screenshot(page: Any, name: str, folder: Path = SCREENSHOTS) -> Path:
    """Save a full-page PNG of the tab as ``folder/name.png``.

    :param page: the Playwright page.
    :param name: the file's stem."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
