"""Cameras against real servers: the dev host and IvoryOS under ``ivoryos_plugin.run``, read by a raw
HTTP client part by part, by ten viewers at once, by one that never reads, and by Chromium; a real
OpenCV source (a video file made here); the snapshot step inside a real IvoryOS workflow. A camera's
capture rate, its backoff and its linger on a clock the test moves (counts, not sleeps)."""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests

from browsing import chromium, screenshot
from ivoryos_plugin.hardware.camera import Camera
from ivoryos_plugin.testing import RecordingClock, manual_clock  # noqa: F401  (a fixture)
from support import PY, ROOT, Server, ivoryos_login, start_process, wait_until

cv2 = pytest.importorskip("cv2")  # the camera extra (installed by ./scripts/install.sh)
PLUGINS = ROOT / "tests" / "plugins"
TOKEN = "camera-test-token"
BOUNDARY = b"--ivoryos-frame"
SHOTS = ROOT / "test-output" / "cameras"
FPS = 15.0


def start_cameras(folder: Path, host: str, **env: str) -> Server:
    return start_process([PY, str(PLUGINS / "camera_deck.py")], folder, "camera_deck.log",
                         env={"PYTHONPATH": str(PLUGINS), "CAM_HOST": host, "CAM_TOKEN": TOKEN,
                              "CAM_FPS": str(FPS), **env})


class PartReader:
    """Reads a multipart/x-mixed-replace stream part by part, checking each boundary and length."""

    def __init__(self, response: requests.Response) -> None:
        self.chunks = response.iter_content(chunk_size=16384)
        self.buf = b""
        #: when each part read so far had fully arrived (``time.time()``), in order
        self.arrived: List[float] = []

    def read(self, count: int, timeout: float = 10.0) -> List[Tuple[Dict[str, str], bytes]]:
        parts: List[Tuple[Dict[str, str], bytes]] = []
        deadline = time.monotonic() + timeout
        while len(parts) < count:
            assert time.monotonic() < deadline, f"{len(parts)} of {count} parts within {timeout} s"
            while True:
                head_end = self.buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                lines = self.buf[:head_end].split(b"\r\n")
                assert lines[0] == BOUNDARY, lines[0]
                headers = dict(line.decode().split(": ", 1) for line in lines[1:])
                size = int(headers["Content-Length"])
                start = head_end + 4
                if len(self.buf) < start + size + 2:
                    break
                assert self.buf[start + size:start + size + 2] == b"\r\n", "a part ends with CRLF, then the boundary"
                parts.append((headers, self.buf[start:start + size]))
                self.arrived.append(time.time())
                self.buf = self.buf[start + size + 2:]
                if len(parts) == count:
                    return parts
            self.buf += next(self.chunks)
        return parts


def read_parts(response: requests.Response, count: int, timeout: float = 10.0) -> List[Tuple[Dict[str, str], bytes]]:
    """Read ``count`` complete parts of a fresh stream."""
    return PartReader(response).read(count, timeout)


class Cams:
    def __init__(self, server: Server, auth: Dict[str, str], session: requests.Session) -> None:
        self.server, self.auth, self.session = server, auth, session
        self.base = f"{server.base}/ivoryos/cams"

    def stream(self, camera: str = "bench") -> requests.Response:
        reply = requests.get(f"{self.base}/cameras/{camera}/stream.mjpg", headers=self.auth, stream=True, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply

    def captures(self) -> int:
        return int(self.session.post(f"{self.base}/actions/counts", json={}, headers=self.auth).json()["captures"])

    def camera_status(self, camera: str = "bench") -> Dict[str, Any]:
        status = self.session.get(f"{self.server.base}/ivoryos/plugins/status.json", headers=self.auth).json()
        plugin = next(p for p in status["plugins"] if p["name"] == "cams")
        return dict(plugin["cameras"][camera])


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real video file (MJPG in AVI, 640x480, 30 frames), made with OpenCV."""
    path = tmp_path_factory.mktemp("video") / "plate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    import numpy as np

    for i in range(30):
        frame = np.full((480, 640, 3), 40, np.uint8)
        cv2.circle(frame, (20 * i + 30, 240), 25, (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 1000
    return path


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, video: Path) -> Iterator[Cams]:
    server = start_cameras(tmp_path_factory.mktemp("cams_dev"), "dev", CAM_VIDEO=str(video))
    try:
        yield Cams(server, {"Authorization": f"Bearer {TOKEN}"}, requests.Session())
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ivoryos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cams]:
    server = start_cameras(tmp_path_factory.mktemp("cams_ivoryos"), "ivoryos")
    try:
        yield Cams(server, {}, ivoryos_login(server.base))
    finally:
        server.stop()


# ------------------------------------------------------------------ HTTP
@pytest.mark.server
def test_a_raw_client_reads_complete_jpeg_parts(dev: Cams) -> None:
    with dev.stream() as reply:
        assert reply.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=ivoryos-frame"
        parts = read_parts(reply, 12)
    seqs = [int(headers["X-Frame-Seq"]) for headers, _ in parts]
    assert seqs == sorted(set(seqs)), f"frames arrive in order, each once: {seqs}"
    for headers, jpeg in parts:
        assert headers["Content-Type"] == "image/jpeg" and int(headers["Content-Length"]) == len(jpeg)
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        image = cv2.imdecode(__import__("numpy").frombuffer(jpeg, "uint8"), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (480, 640, 3)
    snapshot = requests.get(f"{dev.base}/cameras/bench/snapshot.jpg", headers=dev.auth, timeout=10)
    assert snapshot.status_code == 200 and snapshot.headers["Content-Type"] == "image/jpeg"
    assert snapshot.content[:2] == b"\xff\xd8"


@pytest.mark.server
@pytest.mark.parametrize("url", ["cameras/bench/stream.mjpg", "cameras/bench/snapshot.jpg", "gallery"],
                         ids=["stream", "snapshot", "gallery"])
def test_anonymous_viewers_are_refused(dev: Cams, url: str) -> None:
    for headers in ({}, {"Accept": "application/json"}, {"Authorization": "Bearer wrong"}):
        reply = requests.get(f"{dev.base}/{url}", headers=headers, allow_redirects=False, stream=True, timeout=10)
        with reply:
            assert reply.status_code in (302, 401), (headers, reply.status_code)
            assert not reply.headers.get("Content-Type", "").startswith(("image/", "multipart/"))


@pytest.mark.server
def test_ten_viewers_cost_one_capture_and_one_encode_per_frame(dev: Cams) -> None:
    got: Dict[int, List[int]] = {}
    ready = threading.Barrier(11)

    def viewer(i: int) -> None:
        with dev.stream() as reply:
            ready.wait(10)
            got[i] = [int(h["X-Frame-Seq"]) for h, _ in read_parts(reply, int(FPS * 2), timeout=15)]

    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    ready.wait(10)
    captures, encodes = dev.captures(), dev.camera_status()["encodes"]
    for thread in threads:
        thread.join(30)
    captured, encoded = dev.captures() - captures, dev.camera_status()["encodes"] - encodes
    assert len(got) == 10 and all(len(seqs) == int(FPS * 2) for seqs in got.values())
    frames = max(max(seqs) for seqs in got.values()) - min(min(seqs) for seqs in got.values()) + 1
    assert captured <= frames + 2, f"{captured} captures for the {frames} frames the viewers saw: one per frame"
    # (each counter is read by its own request, at both ends: a frame captured or encoded between the two
    # reads of one end counts on one side only; an encode per viewer would give ten times as many)
    assert abs(encoded - captured) <= 2, f"{encoded} encodes for {captured} captures: one per frame"


@pytest.mark.server
def test_a_viewer_that_stops_reading_does_not_slow_the_others(dev: Cams) -> None:
    stuck = socket.create_connection(("127.0.0.1", dev.server.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(f"GET /ivoryos/cams/cameras/bench/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())  # ...and never reads
    try:
        time.sleep(3.0)  # long enough for its buffers to fill: the server's writes to it block
        with dev.stream() as reply:
            started = time.monotonic()
            reader = PartReader(reply)
            parts = reader.read(int(FPS * 2), timeout=10)
            elapsed = time.monotonic() - started
        assert elapsed <= 2 * 1.25 + 0.3, f"30 frames took {elapsed:.2f} s beside a stuck viewer"
        # each of the last five frames' age when it arrived (not when the fifth had: that adds 4 frames)
        ages = [arrived - float(h["X-Frame-Time"]) for (h, _), arrived in zip(parts[-5:], reader.arrived[-5:])]
        assert max(ages) < 2 / FPS + 0.25, f"frames reached the reading viewer late: {ages}"
    finally:
        stuck.close()


def unchunk(raw: bytes) -> Tuple[bytes, bytes]:
    """The body bytes in ``raw`` (HTTP/1.1 chunked framing, any chunk sizes), and what is left over."""
    body = b""
    while True:
        line_end = raw.find(b"\r\n")
        if line_end < 0:
            return body, raw
        size = int(raw[:line_end], 16)
        if len(raw) < line_end + 2 + size + 2:
            return body, raw
        assert raw[line_end + 2 + size:line_end + 4 + size] == b"\r\n", "a chunk ends with CRLF"
        body += raw[line_end + 2:line_end + 2 + size]
        raw = raw[line_end + 4 + size:]


@pytest.mark.server
def test_a_slow_viewer_gets_only_whole_frames_skipping_the_ones_it_has_no_room_for(dev: Cams) -> None:
    slow = socket.create_connection(("127.0.0.1", dev.server.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    slow.sendall(f"GET /ivoryos/cams/cameras/bench/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
    raw, body, parts = b"", b"", []
    try:
        with dev.stream() as fast:  # a viewer beside it that reads at full speed
            reader = PartReader(fast)
            started = time.monotonic()
            while time.monotonic() - started < 4.0:  # about 800 KB/s: a quarter of what the camera sends
                raw += slow.recv(16384)
                time.sleep(0.02)
                if not body and b"\r\n\r\n" in raw:
                    head, raw = raw.split(b"\r\n\r\n", 1)
                    assert head.startswith(b"HTTP/1.1 200") and b"Transfer-Encoding: chunked" in head, head
                    body = b" "
                if body:
                    more, raw = unchunk(raw)
                    body += more
            ended = time.time()
            others = reader.read(int(FPS * 2), timeout=5)
            assert time.monotonic() - started < 4.0 + 2 * 1.25 + 0.5, "the reading viewer was slowed"
    finally:
        slow.close()
    deadline = time.monotonic() + 2  # both viewers gone, the one that lagged behind included
    while dev.camera_status()["viewers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dev.camera_status()["viewers"] == 0
    for piece in body[1:].split(BOUNDARY + b"\r\n")[1:-1]:  # the last one may be cut by the test's end
        head, jpeg = piece.split(b"\r\n\r\n", 1)
        headers = dict(line.decode().split(": ", 1) for line in head.split(b"\r\n"))
        assert jpeg.endswith(b"\r\n") and len(jpeg) - 2 == int(headers["Content-Length"]), "a whole part"
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-4:-2] == b"\xff\xd9"
        parts.append(int(headers["X-Frame-Seq"]))
        newest = float(headers["X-Frame-Time"])
    print(f"slow viewer: frames {parts}; the newest whole one {ended - newest:.2f} s old at the end")
    assert ended - newest < 2.5, "a slow viewer lags by the few frames its connection holds, not seconds"
    assert len(parts) >= 5, f"only {len(parts)} frames in 4 s ({len(body)} body bytes, {len(raw)} left: {raw[:80]!r})"
    assert parts == sorted(set(parts)) and parts[-1] - parts[0] > len(parts) * 1.5, \
        f"frames it had no room for are skipped, not queued: {parts}"
    assert len(others) == int(FPS * 2)


def test_a_server_without_raw_sockets_gets_the_frames_yielded(tmp_path: Path) -> None:
    import numpy as np

    from ivoryos_plugin import Plugin, create_app
    from ivoryos_plugin.hosts.devhost import stop

    plugin = Plugin("yielded", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    plugin.camera("grey", lambda: np.full((48, 64), 128, np.uint8), fps=30)
    app = create_app([plugin], token="t", data_dir=tmp_path, testing=True)  # not ./ivoryos_data
    try:
        reply = app.test_client().get("/ivoryos/yielded/cameras/grey/stream.mjpg", buffered=False,
                                      headers={"Authorization": "Bearer t"})
        assert reply.status_code == 200 and "Transfer-Encoding" not in reply.headers
        data = b""
        for piece in reply.response:  # the Flask test client has no socket: the frames come as the body
            data += piece
            if data.count(BOUNDARY) >= 3:
                break
        reply.close()
        first = data.split(BOUNDARY + b"\r\n")[1]
        assert b"Content-Type: image/jpeg" in first and b"\r\n\r\n\xff\xd8" in first
    finally:
        stop(app)


@pytest.mark.server
def test_a_closed_tab_frees_its_viewer_and_the_capture_stops(dev: Cams) -> None:
    with dev.stream() as reply:
        read_parts(reply, 2)
        assert dev.camera_status()["viewers"] >= 1
    deadline = time.monotonic() + 3
    while dev.camera_status()["viewers"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert dev.camera_status()["viewers"] == 0
    # the capture lingers 1 s for a page reload (test_the_capture_lingers_then_stops_on_the_clock), then stops
    assert wait_until(lambda: dev.camera_status()["running"] is False, 5), "the capture runs for nobody"
    before = dev.captures()
    assert dev.camera_status()["running"] is False and dev.captures() == before, "nobody watches: the camera is not read"


@pytest.mark.server
def test_an_unplugged_camera_recovers_on_the_same_stream(dev: Cams) -> None:
    with dev.stream() as reply:
        reader = PartReader(reply)
        reader.read(2)
        failed = dev.camera_status()["failures"]
        dev.session.post(f"{dev.base}/actions/unplug", json={"unplugged": True}, headers=dev.auth)
        # (the delays between the attempts: test_a_failing_source_backs_off_and_recovers_on_the_clock)
        assert wait_until(lambda: dev.camera_status()["failures"] >= failed + 3, 10), "not retried"
        status = dev.camera_status()
        assert status["error"] == "OSError: camera unplugged", status
        replugged = time.time()
        dev.session.post(f"{dev.base}/actions/unplug", json={"unplugged": False}, headers=dev.auth)
        # frames captured before the unplug may still be on their way (in the socket's buffers): the three
        # wanted are captured after the camera came back (X-Frame-Time: the capture's time on this clock)
        parts: List[Tuple[Dict[str, str], bytes]] = []
        deadline = time.monotonic() + 8
        while len(parts) < 3:
            assert time.monotonic() < deadline, f"{len(parts)} of 3 frames captured after the camera came back"
            parts += [part for part in reader.read(1, timeout=8) if float(part[0]["X-Frame-Time"]) >= replugged]
    assert all(jpeg[:2] == b"\xff\xd8" for _, jpeg in parts) and dev.camera_status()["error"] == ""


@pytest.mark.server
def test_a_missing_camera_is_reported_and_nothing_else_breaks(dev: Cams) -> None:
    reply = requests.get(f"{dev.base}/cameras/missing/snapshot.jpg", headers=dev.auth, timeout=20)
    assert reply.status_code == 503
    assert "OpenCV cannot open '/dev/no-such-camera-42'" in reply.json()["error"]
    assert "no such device" in dev.camera_status("missing")["error"]
    health = requests.get(f"{dev.server.base}/ivoryos/plugins/", headers=dev.auth, timeout=10).text
    assert '<tr data-camera="missing" class="ivp-failed">' in health and "OpenCV cannot open" in health
    assert requests.get(f"{dev.base}/cameras/bench/snapshot.jpg", headers=dev.auth, timeout=10).status_code == 200
    assert requests.get(f"{dev.base}/cameras/nope/snapshot.jpg", headers=dev.auth, timeout=10).status_code == 404


@pytest.mark.server
def test_a_video_file_is_a_camera(dev: Cams) -> None:
    with dev.stream("file") as reply:
        parts = read_parts(reply, 5)
    import numpy as np

    frames = [cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) for _, jpeg in parts]
    assert all(f.shape == (240, 320, 3) for f in frames), "scaled to width=320"
    assert any(not np.array_equal(frames[0], f) for f in frames[1:]), "the video plays"


# ------------------------------------------------------------------ one camera on the test's clock
class Bench:
    """A :class:`Camera` of a grey frame source (an ``OSError`` for the reads ``fail`` picks), run at
    16 fps (a tick of 1/16 s) on the test's clock."""

    def __init__(self, clock: RecordingClock, fail: Callable[[int], bool]) -> None:
        import numpy as np

        self.clock = clock
        self.reads = 0

        def read() -> Any:
            self.reads += 1
            if fail(self.reads):
                raise OSError("camera unplugged")
            return np.full((48, 64), self.reads % 256, np.uint8)

        self.camera = Camera("bench", read, fps=16.0, clock=clock)

    def tick(self, seconds: Optional[float] = None) -> None:
        """Once the capture waits on the clock, move the clock by ``seconds`` (by as much as it waits,
        when None) and wait for the read that wakes."""
        reads = self.reads
        moved = self.clock.step(seconds)
        assert wait_until(lambda: self.reads > reads, 5), f"no capture {moved} s after capture {reads}"


@pytest.fixture
def bench(manual_clock: RecordingClock) -> Iterator[Callable[..., Bench]]:
    made: List[Bench] = []

    def make(fail: Callable[[int], bool] = lambda n: False) -> Bench:
        made.append(Bench(manual_clock, fail))
        return made[-1]

    yield make
    for one in made:
        one.camera.stop()


def test_ten_viewers_cost_one_capture_per_tick_on_the_clock(bench: Any, manual_clock: RecordingClock) -> None:
    cam: Bench = bench()
    for _ in range(10):
        cam.camera.watch()
    assert wait_until(lambda: cam.reads == 1, 5), "the first viewer did not start the capture"
    for _ in range(31):  # two seconds of the clock
        cam.tick(1 / 16)
    assert manual_clock.wait_for_waiters(1)
    status = cam.camera.status()
    assert (cam.reads, status["captures"], status["encodes"]) == (32, 32, 32), f"not one capture per tick: {status}"
    assert manual_clock.waited == [1 / 16] * 32, "not one wait of a tick after each capture"
    frame = cam.camera.next_frame(0, timeout=0)
    assert frame is not None and frame.seq == 32 and frame.captured == manual_clock.time(), "the newest frame"


def test_the_capture_lingers_then_stops_on_the_clock(bench: Any, manual_clock: RecordingClock) -> None:
    cam: Bench = bench()
    cam.camera.watch()
    assert wait_until(lambda: cam.reads == 1, 5)
    cam.camera.leave()  # the last viewer left at 0 s: the capture lingers 1 s for a page reload
    for _ in range(15):
        cam.tick(1 / 16)
    assert manual_clock.wait_for_waiters(1) and cam.camera.running, "the capture stopped before 1 s"
    manual_clock.advance(1 / 16)
    assert wait_until(lambda: not cam.camera.running, 5), "the capture runs for nobody after 1 s"
    manual_clock.advance(10.0)
    assert cam.reads == 16, "nobody watches: the camera is not read"


def test_a_failing_source_backs_off_and_recovers_on_the_clock(bench: Any, manual_clock: RecordingClock) -> None:
    cam: Bench = bench(fail=lambda n: 2 <= n <= 8)  # unplugged for reads 2 to 8
    cam.camera.watch()
    assert wait_until(lambda: cam.reads == 1, 5)
    for _ in range(8):
        cam.tick()  # as long as it waits
    assert wait_until(lambda: len(manual_clock.waited) == 10, 5) and manual_clock.wait_for_waiters(1)
    # a tick, then 0.2 s doubled after each failure up to 5 s (the ticks missed meanwhile dropped); the
    # frame after the recovery at once (its tick has passed), then the rate again
    waits = [1 / 16, 1 / 16 + 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 0.0, 1 / 16]
    assert manual_clock.waited == pytest.approx(waits), "not a backoff from 0.2 s doubled up to 5 s, then none"
    status = cam.camera.status()
    assert (cam.reads, status["failures"], status["encodes"], status["error"]) == (10, 7, 3, "")


# ------------------------------------------------------------------ the snapshot step in IvoryOS
@pytest.mark.server
def test_the_snapshot_step_files_a_photo_under_its_ivoryos_run(ivoryos: Cams) -> None:
    s, base = ivoryos.session, f"{ivoryos.server.base}/ivoryos"
    schema = s.get(f"{base}/instruments", headers={"Accept": "application/json"}).json()
    assert schema["deck.cams"]["snapshot"]["signature"] == "(self, label: str = 'snapshot', camera: str = 'bench') -> Dict[str, Any]"
    script = 'def workflow():\n    deck.sensor.bump(by=1)\n    photo = deck.cams.snapshot(label="plate", camera="bench")\n'
    assert s.post(f"{base}/draft/submit_python", json={"workflow_name": "photo_run", "script": script,
                                                       "prep": "", "cleanup": ""}).status_code == 200
    assert s.post(f"{base}/executions/config", json={"repeat": 1}, headers={"Accept": "application/json"}).status_code == 200
    deadline = time.monotonic() + 30
    runs: List[Dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = s.get(f"{base}/cams/gallery", headers={"Accept": "application/json"}).json()["runs"]
        if runs and runs[0]["files"]:
            break
        time.sleep(0.2)
    records = s.get(f"{base}/executions/records", headers={"Accept": "application/json"}).json()["workflow_data"]
    run_id = max(int(i) for i, info in records.items() if info["workflow_name"] == "photo_run")
    assert runs[0]["run"] == f"run-{run_id}" and runs[0]["run_id"] == run_id
    [photo] = runs[0]["files"]
    assert photo["name"].startswith("step2-") and photo["name"].endswith("-bench-plate.jpg")
    page = s.get(f"{base}/cams/gallery").text
    assert f"Run {run_id}" in page and photo["url"] in page
    image = s.get(ivoryos.server.base + photo["url"])
    assert image.status_code == 200 and image.content[:2] == b"\xff\xd8"
    assert s.get(f"{base}/cams/gallery/../../secret_key").status_code == 404


# ------------------------------------------------------------------ Chromium
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def frames_change(page: Any, name: str) -> None:
    bench = page.locator("#bench")
    page.wait_for_selector("#bench[data-signal=live]")
    page.wait_for_function("document.querySelector('#bench').dataset.frames >= 8")
    first = bench.screenshot()
    page.wait_for_timeout(400)
    second = bench.screenshot()
    assert first != second, "the picture changes"
    fps = float(bench.get_attribute("data-fps") or 0)
    assert FPS * 0.5 <= fps <= FPS * 1.3, f"measured {fps} fps for a {FPS} fps camera"
    page.wait_for_selector("#missing[data-signal=none]", state="attached")
    assert page.locator("#missing + .ivp-camera-nosignal").is_visible()
    assert page.locator("#missing + .ivp-camera-nosignal").inner_text() == "no signal"
    screenshot(page, name, SHOTS)


@pytest.mark.browser
@pytest.mark.server
def test_chromium_shows_live_video_in_the_dev_host(browser: Any, dev: Cams) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 1200})
    try:
        page = context.new_page()
        page.goto(f"{dev.server.base}/ivoryos/?token={TOKEN}")
        page.goto(f"{dev.base}/")
        frames_change(page, "dev-host-cameras")
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.server
def test_chromium_shows_live_video_inside_ivoryos(browser: Any, ivoryos: Cams) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 1200})
    try:
        page = context.new_page()
        page.goto(f"{ivoryos.server.base}/ivoryos/auth/login")
        page.fill("#username", "admin")
        page.fill("#password", "admin")
        with page.expect_navigation():
            page.click("form[name=login] button[type=submit]")
        page.goto(f"{ivoryos.base}/")
        assert "Cameras" in page.title()
        frames_change(page, "ivoryos-cameras")
    finally:
        context.close()
