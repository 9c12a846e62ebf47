"""The deck camera example on the simulated deck (real ptys), through the pytest kit."""
from __future__ import annotations

import time
import types
from typing import Any

import pytest

from deck_camera.plugin import CAMERA


@pytest.fixture
def deck(sim_deck: types.ModuleType) -> types.ModuleType:
    return sim_deck


def test_the_page_shows_the_camera(client: Any) -> None:
    page = client.get("/ivoryos/deck_camera/").get_data(as_text=True)
    assert 'IvoryPlugin.camera("#deck-camera", "/ivoryos/deck_camera/cameras/deck/stream.mjpg")' in page


def test_a_snapshot_is_a_jpeg_of_the_deck(client: Any, deck: types.ModuleType) -> None:
    reply = client.get("/ivoryos/deck_camera/cameras/deck/snapshot.jpg")
    assert reply.status_code == 200 and reply.mimetype == "image/jpeg"
    assert reply.data[:2] == b"\xff\xd8" and reply.data[-2:] == b"\xff\xd9"


def test_the_drawing_follows_the_pump(client: Any, deck: types.ModuleType) -> None:
    assert CAMERA.filled() == 0
    deck.pump.dispense(0.5)
    deck.pump.dispense(0.25)
    assert CAMERA.filled() == 2


def test_the_snapshot_step_files_a_photo_outside_a_run(client: Any) -> None:
    reply = client.post("/ivoryos/deck_camera/steps/snapshot", json={"label": "by hand"})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    photo = reply.get_json()["result"]
    assert photo["run_id"] is None and photo["file"].startswith("no-run/") and photo["file"].endswith("-deck-by_hand.jpg")
    gallery = client.get("/ivoryos/deck_camera/gallery", headers={"Accept": "application/json"}).get_json()
    assert gallery["runs"][0]["run"] == "no-run" and gallery["runs"][0]["files"][0]["url"] == photo["url"]
    with client.get(photo["url"]) as image:
        assert image.status_code == 200 and image.data[:2] == b"\xff\xd8"
