import pytest

from deck_camera.plugin import CAMERA, plugin as deck_camera_plugin


@pytest.fixture
def plugin():
    """The plugin under test."""
    CAMERA.reset()
    return deck_camera_plugin
