"""The pytest kit for plugin authors (public path of :mod:`ivoryos_plugin.tools.testing.kit`).

Opt in from your project's top-level ``conftest.py`` (the scaffold's does)::

    pytest_plugins = ["ivoryos_plugin.testing"]

Installing the framework adds no fixture to other projects' test runs.

A test that runs only on IvoryOS 1.x (login, IvoryOS's own pages: it takes ``anon_client``,
``client`` or ``ivoryos_client``) builds its URLs from the app it talks to, as a ``plugin_host``
test builds them from the host, never writing ``/ivoryos/...`` out::

    def test_anonymous_visitors_are_sent_to_login(anon_client, plugin):
        page = anon_client.get(plugin_url(anon_client, plugin))
        assert page.headers["Location"].startswith(login_url(anon_client))
"""
from __future__ import annotations

from typing import Any, List, Union

from flask import Flask, url_for
from flask.testing import FlaskClient
from werkzeug.routing import BuildError

from .tools.testing.kit import *  # noqa: F401,F403  (the fixtures pytest collects from this module)
from .tools.testing.kit import __all__ as _KIT

__all__: List[str] = [*_KIT, "ivoryos_url", "login_url", "plugin_url"]

#: an app of the kit (``plugin_app``, ``ivoryos_app``) or one of its test clients (``client``...)
AppOrClient = Union[Flask, FlaskClient]


def _app(host: AppOrClient) -> Flask:
    return host.application if isinstance(host, FlaskClient) else host


def ivoryos_url(host: AppOrClient, path: str = "") -> str:
    """The URL path of ``path`` under IvoryOS 1.x's URL prefix on ``host`` (its ``URL_PREFIX``,
    ``/ivoryos`` unless the app was given another): ``ivoryos_url(ivoryos_client)`` is IvoryOS's
    home page, ``ivoryos_url(client, "plugins/status.json")`` the framework's health as JSON.

    :param host: the app, or a test client of it (``client``, ``anon_client``, ``ivoryos_client``).
    :param path: relative to the prefix."""
    prefix = str(_app(host).config.get("URL_PREFIX", "/ivoryos") or "").rstrip("/")
    return f"{prefix}/{path.lstrip('/')}"


def login_url(host: AppOrClient) -> str:
    """The URL path of IvoryOS's login page on ``host`` (its ``auth.login`` endpoint, which the
    standalone host has too): where an anonymous visitor of a page is sent.

    :param host: the app, or a test client of it.
    :raises LookupError: the app has no login page (not IvoryOS, nor the kit's standalone host)."""
    app = _app(host)
    try:
        with app.test_request_context():
            return url_for("auth.login")
    except BuildError:
        raise LookupError(f"login_url: the app {app.name!r} has no 'auth.login' endpoint; give it IvoryOS's "
                          "app or the standalone host (ivoryos_app, plugin_app) or a test client of one") from None


def plugin_url(host: AppOrClient, plugin: Any, path: str = "") -> str:
    """The URL path of ``path`` under a plugin on IvoryOS 1.x (``{URL_PREFIX}/<name>/<path>``):
    ``plugin_url(anon_client, plugin)`` is its page, ``plugin_url(anon_client, plugin, "actions/greet")``
    an action. A test that runs on both hosts uses ``plugin_host.url(path)`` instead.

    :param host: the app, or a test client of it.
    :param plugin: the plugin (or its name).
    :param path: relative to the plugin's prefix."""
    name = plugin if isinstance(plugin, str) else str(plugin.name)
    return ivoryos_url(host, f"{name}/{path.lstrip('/')}")
