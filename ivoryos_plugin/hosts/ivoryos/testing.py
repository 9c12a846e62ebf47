"""IvoryOS's app inside a test process (the opt-in pytest kit's ``ivoryos_app``): test-only, never
used by a running server. Part of the IvoryOS adapter (:mod:`ivoryos_plugin.hosts.ivoryos`)."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

from flask import Blueprint, Flask

from .serving import get_config
from .state import _global_state


def in_process_app(root: Path, make_deck: Callable[[str], Any]) -> Dict[str, Any]:
    """IvoryOS's module-level app for tests, created once per process with its data under ``root``.

    ``import ivoryos`` fixes its data paths from the current directory, so it is imported from
    ``root``; the testing config gets a database there and CSRF on (verified on 1.7.2).

    :param root: the folder for IvoryOS's data.
    :param make_deck: builds an empty deck module when IvoryOS has none.
    :returns: ``{"app", "deck", "plugins", "load_plugins", "socketio"}``."""
    root.mkdir(parents=True, exist_ok=True)
    if "ivoryos" not in sys.modules:
        cwd = os.getcwd()
        os.chdir(root)
        try:
            import ivoryos  # noqa: F401
        finally:
            os.chdir(cwd)
    from ivoryos.app import create_app
    from ivoryos.server import load_plugins
    from ivoryos.socket_handlers import socketio

    config = get_config("testing")
    config.OUTPUT_FOLDER = str(root / "ivoryos_data")
    config.SQLALCHEMY_DATABASE_URI = f"sqlite:///{root / 'ivoryos_data' / 'ivoryos.db'}"
    config.WTF_CSRF_ENABLED = True
    app = create_app(config_class=config)
    state = _global_state()
    deck_module = state.deck if state.deck is not None else make_deck("ivoryos_plugin_test_deck")
    state.deck = deck_module
    plugins: List[Blueprint] = []
    app.context_processor(lambda: {"plugins": plugins, "enable_design": True})
    return {"app": app, "deck": deck_module, "plugins": plugins, "load_plugins": load_plugins,
            "socketio": socketio}


def allow_late_blueprints(app: Flask) -> None:
    """Let a test register a blueprint on IvoryOS's process-wide app after it served a request
    (Flask's private ``_got_first_request``; verified on Flask 3.0-3.1).

    :param app: IvoryOS's app."""
    app._got_first_request = False
