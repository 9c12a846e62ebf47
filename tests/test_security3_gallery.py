"""The camera gallery serves only files inside its photos folder, whatever the path says. The
requests go out byte for byte as written here (http.client on a raw request line: ``../`` and
``%2e%2e/`` are not normalised away by the client, as requests and browsers do), to a real
Werkzeug server; the files they aim at exist and are JPEGs, so only the path check stands between
them and the caller."""
from __future__ import annotations

import http.client
import os
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest
from werkzeug.serving import WSGIRequestHandler

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.testing import serve_app

TOKEN = "gallery-token"
PHOTO = b"\xff\xd8\xff\xe0 a photo of the deck"
SECRET = b"\xff\xd8\xff\xe0 NOT FOR THE GALLERY"


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class Gallery:
    def __init__(self, address: str, photos: Path, outside: Path) -> None:
        self.address, self.photos, self.outside = address, photos, outside

    def get(self, path: str) -> Tuple[int, bytes]:
        """GET ``path`` exactly as written (no client-side normalising), with the bearer token."""
        conn = http.client.HTTPConnection(self.address, timeout=10)
        try:
            conn.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
            conn.putheader("Authorization", f"Bearer {TOKEN}")
            conn.endheaders()
            reply = conn.getresponse()
            return reply.status, reply.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gallery]:
    plugin = Plugin("cams", __name__, template_folder=None)
    plugin.add_url_rule("/", "main", lambda: "page")
    plugin.camera("bench", lambda: PHOTO)
    data = tmp_path_factory.mktemp("gallery") / "data"
    app = create_app([plugin], data_dir=data, token=TOKEN, testing=True)
    photos = app.extensions["ivoryos_plugin"].runtimes["cams"].cameras.folder()
    (photos / "run-1").mkdir(parents=True)
    (photos / "run-1" / "plate.jpg").write_bytes(PHOTO)
    outside = photos.parent / "outside.jpg"  # in the plugin's data folder, next to the photos
    outside.write_bytes(SECRET)
    (photos.parent / "settings.jpg").write_bytes(SECRET)
    (photos.parent.parent / "top.jpg").write_bytes(SECRET)  # the data folder of every plugin
    os.symlink(outside, photos / "run-1" / "link.jpg")
    os.symlink(photos.parent, photos / "run-2", target_is_directory=True)
    try:
        with serve_app(app, request_handler=_Quiet) as base:
            yield Gallery(base.removeprefix("http://"), photos, outside)
    finally:
        stop(app)


def test_a_photo_inside_the_folder_is_served(gallery: Gallery) -> None:
    status, body = gallery.get("/ivoryos/cams/gallery/run-1/plate.jpg")
    assert status == 200 and body == PHOTO


@pytest.mark.parametrize("path", [
    "/ivoryos/cams/gallery/../outside.jpg",
    "/ivoryos/cams/gallery/run-1/../../outside.jpg",
    "/ivoryos/cams/gallery/%2e%2e/outside.jpg",
    "/ivoryos/cams/gallery/%2E%2E/settings.jpg",
    "/ivoryos/cams/gallery/..%2foutside.jpg",
    "/ivoryos/cams/gallery/run-1/..%2F..%2Foutside.jpg",
    "/ivoryos/cams/gallery/../../top.jpg",
    "/ivoryos/cams/gallery/run-1/link.jpg",
    "/ivoryos/cams/gallery/run-2/outside.jpg",
    "/ivoryos/cams/gallery/run-1/../../../../../../../../etc/hostname",
], ids=["dotdot", "dotdot-deeper", "encoded-dots", "encoded-dots-upper", "encoded-slash", "encoded-both",
        "two-up", "symlinked-file", "symlinked-folder", "etc"])
def test_a_path_out_of_the_photos_folder_is_a_404(gallery: Gallery, path: str) -> None:
    status, body = gallery.get(path)
    assert status == 404, (status, body[:200])
    assert SECRET not in body and b"NOT FOR" not in body
    assert b"no photo" in body

