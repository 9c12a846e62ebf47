"""The deck camera example on the simulated deck (real ptys), through the pytest kit.

The tests that take ``plugin_host`` run on both IvoryOS generations: ``[ivoryos]`` (IvoryOS 1.x's
stack) and ``[edge]`` (ivoryos-edge; skipped without the ``[edge]`` extra)."""
from __future__ import annotations

import types
from typing import Any

import pytest

from deck_camera.plugin import CAMERA


@pytest.fixture
def deck(sim_deck: types.ModuleType) -> types.ModuleType:
    return sim_deck


def test_the_page_shows_the_camera(plugin_host: Any) -> None:
    page = plugin_host.client.get(plugin_host.url()).get_data(as_text=True)
    stream = plugin_host.url("cameras/deck/stream.mjpg")
    assert f'IvoryPlugin.camera("#deck-camera", "{stream}")' in page


def test_the_stream_sends_jpeg_frames(plugin_host: Any) -> None:
    head = plugin_host.read_stream(plugin_host.url("cameras/deck/stream.mjpg"), 4096)
    assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head  # a multipart part holding a JPEG


def test_a_snapshot_is_a_jpeg_of_the_deck(plugin_host: Any, deck: types.ModuleType) -> None:
    reply = plugin_host.client.get(plugin_host.url("cameras/deck/snapshot.jpg"))
    assert reply.status_code == 200 and reply.mimetype == "image/jpeg"
    assert reply.data[:2] == b"\xff\xd8" and reply.data[-2:] == b"\xff\xd9"


def test_the_drawing_follows_the_pump(plugin_host: Any, deck: types.ModuleType) -> None:
    assert CAMERA.filled() == 0
    deck.pump.dispense(0.5)
    deck.pump.dispense(0.25)
    assert CAMERA.filled() == 2


def test_the_snapshot_step_files_a_photo_outside_a_run(plugin_host: Any) -> None:
    client = plugin_host.client
    reply = client.post(plugin_host.url("steps/snapshot"), json={"label": "by hand"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    photo = reply.get_json()["result"]
    assert photo["run_id"] is None and photo["file"].startswith("no-run/") and photo["file"].endswith("-deck-by_hand.jpg")
    gallery = client.get(plugin_host.url("gallery"), headers={"Accept": "application/json"}).get_json()
    assert gallery["runs"][0]["run"] == "no-run" and gallery["runs"][0]["files"][0]["url"] == photo["url"]
    assert photo["url"].startswith(plugin_host.url())  # the host's own URL, built by url_for
    with client.get(photo["url"]) as image:
        assert image.status_code == 200 and image.data[:2] == b"\xff\xd8"
