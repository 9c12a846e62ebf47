"""The snapshot step's photos are bounded (issue 27): each camera's photos older than its ``keep_s``
and beyond its ``keep_bytes`` are removed, oldest first, after each snapshot and in the background,
while the newest stay listed on the gallery and served; a run folder left empty goes too; a symlink
planted in the photos folder is neither followed nor deleted through. The real dev host served by a
real Werkzeug server, the simulated deck camera, the snapshot step over HTTP; ages are measured with
a clock the test moves (no sleeping)."""
from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler

from ivoryos_plugin import Plugin, PluginError, create_app
from ivoryos_plugin.core.clock import ManualClock
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime.cameras import camera_set as cameras_module
from ivoryos_plugin.testing import serve_app
from support import wait_until

pytest.importorskip("cv2")  # the simulated camera draws with OpenCV (the camera extra)
from ivoryos_plugin.sim import DeckCamera  # noqa: E402

TOKEN = "photos-token"
DAY = 86400.0
OLD_NAME = "step1-20240101-000000-000-{camera}-plate.jpg"  # what an earlier run of the same deck left
OLDER_NAME = "step0-20231231-000000-000-deck-plate.jpg"
PRECIOUS = b"\xff\xd8 NOT A PHOTO OF OURS \xff\xd9"


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class Host:
    """The dev host with a two-camera plugin: ``deck`` kept for an hour, ``bench`` up to ``bench_bytes``."""

    def __init__(self, data: Path, clock: ManualClock, bench_bytes: int) -> None:
        plugin = Plugin("cams", __name__, template_folder=None)
        plugin.add_url_rule("/", "main", lambda: "page")
        plugin.camera("deck", DeckCamera(), fps=5, keep_s=3600, keep_bytes=None)
        plugin.camera("bench", DeckCamera(), fps=5, keep_s=None, keep_bytes=bench_bytes)
        self.app = create_app([plugin], data_dir=data, token=TOKEN, testing=True)
        self.cameras = self.app.extensions["ivoryos_plugin"].runtimes["cams"].cameras
        self.cameras.retention.clock = clock  # (a Clock: photos are stamped and aged with its time())
        self.photos = self.cameras.folder()
        self.serving = contextlib.ExitStack()
        self.base = self.serving.enter_context(serve_app(self.app, request_handler=_Quiet)) + "/ivoryos/cams"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"

    def snapshot(self, camera: str, label: str) -> Dict[str, Any]:
        reply = self.session.post(f"{self.base}/steps/snapshot", json={"label": label, "camera": camera}, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()["result"]  # type: ignore[no-any-return]

    def gallery(self) -> Dict[str, Any]:
        reply = self.session.get(f"{self.base}/gallery", headers={"Accept": "application/json"}, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def listed(self, camera: str) -> List[str]:
        """The gallery's photos of ``camera`` (``run/file``), as the page lists them."""
        return sorted(f"{run['run']}/{photo['name']}" for run in self.gallery()["runs"] for photo in run["files"]
                      if f"-{camera}-" in photo["name"])

    def served(self, relative: str) -> int:
        reply = self.session.get(f"{self.base}/gallery/{relative}", timeout=10)
        assert reply.status_code != 200 or reply.content[:2] == b"\xff\xd8", "a JPEG"
        return reply.status_code

    def kept(self, camera: str) -> Dict[str, Any]:
        return next(row for row in self.gallery()["kept"]["cameras"] if row["camera"] == camera)

    def close(self) -> None:
        self.serving.close()
        stop(self.app)


BENCH_BYTES = 100_000  # about three of the simulated camera's photos


@pytest.fixture
def clock() -> ManualClock:
    """The time the plugin stamps photos with and measures their ages by; the test moves it."""
    return ManualClock(start=time.time())


@pytest.fixture
def planted(tmp_path: Path, clock: ManualClock) -> Dict[str, Path]:
    """What an earlier month left in the photos folder: a run folder with an old photo of each
    camera; and links planted next to them, to a folder and to a file outside, as old as can be."""
    data = tmp_path / "data"
    photos = data / "plugins" / "cams" / "photos"
    (photos / "run-1").mkdir(parents=True)
    for name, age in ((OLD_NAME.format(camera="deck"), 40 * DAY), (OLDER_NAME, 41 * DAY),
                      (OLD_NAME.format(camera="bench"), 40 * DAY)):
        (photos / "run-1" / name).write_bytes(b"\xff\xd8 an old photo \xff\xd9")
        os.utime(photos / "run-1" / name, (clock.time() - age,) * 2)
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in (OLD_NAME.format(camera="deck"), OLD_NAME.format(camera="bench"), "precious.jpg"):
        (outside / name).write_bytes(PRECIOUS)
        os.utime(outside / name, (clock.time() - 400 * DAY,) * 2)
    os.symlink(outside, photos / "run-2", target_is_directory=True)
    (photos / "run-3").mkdir()
    link = photos / "run-3" / OLD_NAME.format(camera="deck").replace("plate", "link")
    os.symlink(outside / "precious.jpg", link)
    os.utime(link, (clock.time() - 400 * DAY,) * 2, follow_symlinks=False)
    return {"data": data, "photos": photos, "outside": outside, "link": link}


@pytest.fixture
def host(request: pytest.FixtureRequest, planted: Dict[str, Path], clock: ManualClock,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """The host; its background pass runs once at the start, then every hour (so what a snapshot
    removes, it removes itself), or every 50 ms for a test parametrised with ``BACKGROUND``."""
    monkeypatch.setattr(cameras_module, "PRUNE_EVERY_S", getattr(request, "param", 3600.0))
    server = Host(planted["data"], clock, bench_bytes=BENCH_BYTES)
    try:
        yield server
    finally:
        server.close()


#: a test whose host prunes in the background every 50 ms
BACKGROUND = pytest.mark.parametrize("host", [0.05], indirect=True, ids=["background-pass-often"])


def newest_within(sizes: List[int], bound: int) -> int:
    """How many of the newest photos (``sizes`` oldest first) a size bound keeps: the most whose
    total is within it, and the newest one whatever its size."""
    total, kept = 0, 0
    for size in reversed(sizes):
        if kept and total + size > bound:
            break
        total, kept = total + size, kept + 1
    return kept


# ------------------------------------------------------------------ by age
def test_photos_older_than_keep_s_are_removed_at_each_snapshot_and_the_newest_stay_listed_and_served(
        host: Host, clock: ManualClock, planted: Dict[str, Path]) -> None:
    run_1 = planted["photos"] / "run-1"
    assert wait_until(lambda: not (run_1 / OLDER_NAME).exists(), 10), "the pass at the start removes what aged out"
    assert host.listed("deck") == [f"run-1/{OLD_NAME.format(camera='deck')}"], "a camera's newest stays, however old"
    assert (run_1 / OLD_NAME.format(camera="bench")).exists(), "bench keeps photos of any age"

    taken = []
    for i in range(3):  # an hour's bound; photos 20 minutes apart
        clock.advance(1200 if i else 0)
        taken.append(host.snapshot("deck", f"plate {i}")["file"])
    assert host.listed("deck") == sorted(taken), "the old one went at the first snapshot: no longer the newest"
    assert [host.served(f) for f in taken] == [200, 200, 200]

    clock.advance(3600 + 1800 - 2 * 1200)  # 90 min after the first: the first two are older than an hour, the third is not
    taken.append(host.snapshot("deck", "plate 3")["file"])  # the snapshot applies the bound (no background pass for an hour)
    assert host.listed("deck") == sorted(taken[2:])
    assert [host.served(f) for f in taken] == [404, 404, 200, 200]
    assert not (host.photos / taken[0]).exists() and not (host.photos / taken[1]).exists()
    kept = host.kept("deck")
    assert kept["photos"] == 2 and kept["bytes"] == sum((host.photos / f).stat().st_size for f in taken[2:])


@BACKGROUND
def test_photos_that_age_out_with_no_snapshot_are_removed_in_the_background_all_but_the_newest(
        host: Host, clock: ManualClock) -> None:
    taken = []
    for i in range(3):
        clock.advance(60)
        taken.append(host.snapshot("deck", f"plate {i}")["file"])
    assert host.listed("deck") == sorted(taken)
    clock.advance(30 * DAY)  # everything is old now; no snapshot is taken: the background pass prunes
    assert wait_until(lambda: host.listed("deck") == [taken[-1]], 10), host.listed("deck")
    assert [host.served(f) for f in taken] == [404, 404, 200], "a camera's newest photo is never removed"
    kept = host.kept("deck")
    assert kept["photos"] == 1 and kept["bytes"] == (host.photos / taken[-1]).stat().st_size
    assert kept["keep_s"] == 3600 and kept["keep_bytes"] is None and kept["bound"] == "for 1 hour, with no size limit"
    page = host.session.get(f"{host.base}/gallery", timeout=10).text
    assert "deck for 1 hour, with no size limit" in page and "bench whatever their age, at most 97.7 KiB" in page
    assert f'data-camera="deck" data-photos="1" data-bytes="{kept["bytes"]}"' in page, "the totals, now"


# ------------------------------------------------------------------ by size
def test_photos_beyond_keep_bytes_are_removed_oldest_first_and_the_newest_stay_listed_and_served(
        host: Host, clock: ManualClock, planted: Dict[str, Path]) -> None:
    host.snapshot("deck", "today")  # (the deck's old photo in run-1 is no longer its newest: it goes)
    old_bench = f"run-1/{OLD_NAME.format(camera='bench')}"
    files, sizes = [old_bench], [(host.photos / old_bench).stat().st_size]
    for i in range(8):
        clock.advance(1)
        photo = host.snapshot("bench", f"sample {i}")
        files.append(photo["file"])
        sizes.append(photo["bytes"])
        kept = newest_within(sizes, BENCH_BYTES)
        assert host.listed("bench") == sorted(files[-kept:]), f"after photo {i}"
        total = host.kept("bench")
        assert total["photos"] == kept and total["bytes"] == sum(sizes[-kept:]) <= max(BENCH_BYTES, sizes[-1])
    kept = newest_within(sizes, BENCH_BYTES)
    assert 1 < kept < len(files) - 4, f"{kept} of {len(files)} kept: the bound is tested, not trivially met"
    assert [host.served(f) for f in files] == [404] * (len(files) - kept) + [200] * kept
    assert not (host.photos / "run-1").exists(), "a run folder left empty goes with its last photo"
    assert host.gallery()["kept"]["removed"] >= len(files) - kept


# ------------------------------------------------------------------ links
@BACKGROUND
def test_a_symlink_planted_in_the_photos_folder_is_not_followed_nor_deleted_through(
        host: Host, clock: ManualClock, planted: Dict[str, Path]) -> None:
    clock.advance(1000 * DAY)  # every photo, and every file a link points at, is far beyond the bound
    for i in range(3):
        host.snapshot("deck", f"late {i}")
        host.snapshot("bench", f"late {i}")
    clock.advance(1000 * DAY)
    assert wait_until(lambda: len(host.listed("deck")) == 1, 10), host.gallery()
    assert host.kept("bench")["bytes"] <= BENCH_BYTES
    outside = planted["outside"]
    assert sorted(p.name for p in outside.iterdir()) == sorted(
        [OLD_NAME.format(camera="deck"), OLD_NAME.format(camera="bench"), "precious.jpg"]), "nothing removed through a link"
    assert all(p.read_bytes() == PRECIOUS for p in outside.iterdir())
    assert (planted["photos"] / "run-2").is_symlink() and planted["link"].is_symlink(), "the links stay, as found"
    runs = [run["run"] for run in host.gallery()["runs"]]
    assert "run-2" not in runs and all("-link" not in name for name in host.listed("deck"))
    assert host.served(f"run-2/{OLD_NAME.format(camera='deck')}") == 404
    assert host.served(f"run-3/{planted['link'].name}") == 404
    assert host.kept("deck")["photos"] == 1, "a link is not counted as a photo"


# ------------------------------------------------------------------ declaring the bound
@pytest.mark.parametrize("keep, message", [
    ({"keep_s": -1}, "keep_s=-1 must be a positive number of seconds"),
    ({"keep_s": float("inf")}, "keep_s=inf must be a positive number of seconds"),
    ({"keep_s": True}, "keep_s=True must be a positive number of seconds"),
    ({"keep_bytes": 0}, "keep_bytes=0 must be a whole number of bytes"),
    ({"keep_bytes": 1.5e9}, "keep_bytes=1500000000.0 must be a whole number of bytes"),
    ({"keep_bytes": "2G"}, "keep_bytes='2G' must be a whole number of bytes"),
], ids=["negative", "infinite", "bool", "zero-bytes", "float-bytes", "text-bytes"])
def test_a_bad_bound_is_refused_at_declaration_naming_the_plugin_and_the_fix(keep: Dict[str, Any], message: str) -> None:
    plugin = Plugin("cams", __name__, template_folder=None)
    with pytest.raises(PluginError, match=rf"^Plugin 'cams': camera 'deck': {re.escape(message)}.*(e\.g\.|None)"):
        plugin.camera("deck", DeckCamera(), **keep)


def test_the_default_bound_is_30_days_and_2_gib_and_none_lifts_it() -> None:
    plugin = Plugin("cams", __name__, template_folder=None)
    plugin.camera("deck", DeckCamera())
    plugin.camera("bench", DeckCamera(), keep_s=None, keep_bytes=None)
    cameras = plugin.declarations.cameras
    assert (cameras["deck"].keep_s, cameras["deck"].keep_bytes) == (30 * DAY, 2 * 1024 ** 3)
    assert (cameras["bench"].keep_s, cameras["bench"].keep_bytes) == (None, None)
