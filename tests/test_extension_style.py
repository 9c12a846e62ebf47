"""The explicit attach in Flask's extension style (``IvoryOSPlugins(app)`` / ``init_app(app)``): all
state in ``app.extensions["ivoryos_plugin"]``, attaching twice changes nothing, two apps in one
process keep separate state, and plain ``ivoryos.run(blueprint_plugins=[plugin])`` still attaches
(the implicit attach calls the same ``init_app``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
import requests
from flask import Blueprint, Flask
from pydantic import BaseModel

from ivoryos_plugin import IvoryOSPlugins, Plugin
from ivoryos_plugin.runtime.attach import IMPLICIT, framework_blueprint
from ivoryos_plugin.runtime.extension import Extension
from support import ivoryos_login


class Settings(BaseModel):
    """A setting each app keeps on its own."""

    rate_hz: float = 1.0


def make_plugin(name: str) -> Plugin:
    """A plugin with a public page, a settings model and nothing that starts a thread."""
    plugin = Plugin(name, __name__, settings=Settings)

    @plugin.route("/", public=True)
    def main() -> str:
        return f"page of {plugin.name} at {plugin.settings.rate_hz} Hz"

    return plugin


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[[str], Flask]]:
    """``make(label)``: a plain Flask app with its own data folder; every one is stopped after the test."""
    made: List[Flask] = []

    def make(label: str) -> Flask:
        app = Flask(f"app_{label}")
        app.config.update(SECRET_KEY="test", OUTPUT_FOLDER=str(tmp_path / label), URL_PREFIX="/ivoryos")
        made.append(app)
        return app

    yield make
    for app in made:
        ext = app.extensions.get("ivoryos_plugin")
        if isinstance(ext, Extension):
            ext.stop_all()


def register(app: Flask, plugin: Blueprint) -> None:
    app.register_blueprint(plugin, url_prefix=f"/ivoryos/{plugin.name}")


def test_init_app_attaches_a_plain_flask_app_and_keeps_everything_in_its_extension(apps: Callable[[str], Flask]) -> None:
    app = apps("one")
    framework = IvoryOSPlugins()
    ext = framework.init_app(app)
    assert app.extensions["ivoryos_plugin"] is ext and isinstance(ext, Extension) and ext.ready
    assert ext.frameworks == [framework]
    assert not vars(framework).keys() & {"app", "ext", "extension", "runtimes"}  # options only, no app state
    plugin = make_plugin("explicit_one")
    register(app, plugin)
    client = app.test_client()
    page = client.get("/ivoryos/explicit_one/")
    assert page.status_code == 200 and page.text == "page of explicit_one at 1.0 Hz"
    assert page.headers["X-Content-Type-Options"] == "nosniff"  # the framework guards the plugin's pages
    with client.get("/ivoryos/plugins/static/ivoryos_plugin.js") as asset:  # its own blueprint
        assert asset.status_code == 200
    assert client.get("/ivoryos/plugins/status.json").status_code in (401, 403)  # the health data needs a login
    with app.app_context():
        assert plugin.runtime is ext.runtimes["explicit_one"]


def test_constructor_with_an_app_is_init_app(apps: Callable[[str], Flask]) -> None:
    app = apps("ctor")
    framework = IvoryOSPlugins(app)
    assert app.extensions["ivoryos_plugin"].frameworks == [framework]


def test_init_app_twice_changes_nothing(apps: Callable[[str], Flask]) -> None:
    app = apps("twice")
    calls: List[Tuple[Flask, Extension]] = []
    failure = {"name": "broken", "stage": "import", "error": "ImportError: no", "traceback": ""}
    framework = IvoryOSPlugins(failures=[failure], on_attach=[lambda a, e: calls.append((a, e))])
    first = framework.init_app(app)
    hooks_before = {key: list(funcs) for key, funcs in app.before_request_funcs.items()}
    after_before = {key: list(funcs) for key, funcs in app.after_request_funcs.items()}
    blueprints = dict(app.blueprints)
    second = framework.init_app(app)
    assert second is first
    assert calls == [(app, first)]
    assert first.failures == [failure]
    assert {key: list(funcs) for key, funcs in app.before_request_funcs.items()} == hooks_before
    assert {key: list(funcs) for key, funcs in app.after_request_funcs.items()} == after_before
    assert app.blueprints == blueprints
    plugin = make_plugin("twice_plugin")
    register(app, plugin)  # the plugin's registration attaches nothing again
    assert app.extensions["ivoryos_plugin"] is first and calls == [(app, first)]


def test_one_extension_object_attaches_several_apps_each_with_its_own_state(apps: Callable[[str], Flask]) -> None:
    seen: List[Flask] = []
    framework = IvoryOSPlugins(on_attach=[lambda a, e: seen.append(a)])
    plugin = make_plugin("shared")
    state: Dict[str, Any] = {}
    for label in ("a", "b"):
        app = apps(label)
        framework.init_app(app)
        register(app, plugin)
        state[label] = app
    app_a, app_b = state["a"], state["b"]
    ext_a, ext_b = app_a.extensions["ivoryos_plugin"], app_b.extensions["ivoryos_plugin"]
    assert seen == [app_a, app_b] and ext_a is not ext_b
    runtime_a, runtime_b = ext_a.runtimes["shared"], ext_b.runtimes["shared"]
    assert runtime_a is not runtime_b
    with app_a.app_context():
        assert plugin.runtime is runtime_a
        runtime_a.settings_store.update({"rate_hz": 7.5})
        plugin.publish("hello", "from a")
        assert plugin.data_dir.parent.parent.name == "a"
    with app_b.app_context():
        assert plugin.runtime is runtime_b
        assert plugin.settings.rate_hz == 1.0  # a's save is a's
        assert plugin.data_dir.parent.parent.name == "b"
    assert runtime_a.hub.last_published == {"hello": "from a"} and runtime_b.hub.last_published == {}
    assert app_a.test_client().get("/ivoryos/shared/").text == "page of shared at 7.5 Hz"
    assert app_b.test_client().get("/ivoryos/shared/").text == "page of shared at 1.0 Hz"


def test_registering_a_plugin_on_a_bare_app_calls_the_same_init_app(apps: Callable[[str], Flask]) -> None:
    app = apps("implicit")
    plugin = make_plugin("implicit_one")
    register(app, plugin)
    ext = app.extensions["ivoryos_plugin"]
    assert ext.frameworks == [IMPLICIT] and "plugins" in app.blueprints
    # an explicit extension coming later adds its options to the same state, once
    failure = {"name": "late", "stage": "import", "error": "x", "traceback": ""}
    late = IvoryOSPlugins(failures=[failure])
    assert late.init_app(app) is ext and late.init_app(app) is ext
    assert ext.frameworks == [IMPLICIT, late] and ext.failures == [failure]


def test_plain_blueprints_get_the_baseline_when_the_app_is_attached(apps: Callable[[str], Flask]) -> None:
    app = apps("plain")
    plain = Blueprint("plain_page", __name__)
    plain.add_url_rule("/", "main", lambda: "plain")
    IvoryOSPlugins(app, plain=[plain])
    register(app, plain)
    reply = app.test_client().get("/ivoryos/plain_page/")
    assert reply.status_code in (302, 401, 403) and "plain_page" in app.extensions["ivoryos_plugin"].plain


def test_the_shared_blueprint_and_the_implicit_extension_take_nothing_per_run(apps: Callable[[str], Flask]) -> None:
    """Per-run hooks go to the run's ``IvoryOSPlugins``: the module's ``framework_blueprint`` (which
    every implicitly attached app registers) refuses setup functions once built, and the implicit
    extension refuses hooks, each naming the fix; an app attached by them gets no run's hooks."""
    calls: List[str] = []
    with pytest.raises(RuntimeError, match=r"IvoryOSPlugins\(on_attach=\[hook\]\)"):  # one never registered
        IvoryOSPlugins().blueprint().record_once(lambda state: calls.append("record:" + state.app.name))
    with pytest.raises((RuntimeError, AssertionError)):  # Flask's own check refuses once it was registered
        framework_blueprint.record_once(lambda state: calls.append("record:" + state.app.name))
    with pytest.raises(RuntimeError, match=r"IvoryOSPlugins\(on_attach=\[hook\]\)"):
        IMPLICIT.on_attach(lambda app, ext: calls.append("hook:" + app.name))
    assert IMPLICIT.hooks == [] and framework_blueprint.framework is IMPLICIT
    run = IvoryOSPlugins(on_attach=[lambda app, ext: calls.append("hook:" + app.name)])
    first = apps("run")
    first.register_blueprint(run.blueprint(), url_prefix="/ivoryos/plugins")
    other = apps("later")
    other.register_blueprint(framework_blueprint, url_prefix="/ivoryos/plugins")  # the shared one: nothing per run
    assert calls == ["hook:app_run"]
    assert first.extensions["ivoryos_plugin"].frameworks == [run]
    assert other.extensions["ivoryos_plugin"].frameworks == [IMPLICIT]


DECK = '''
import os

import ivoryos
from ivoryos_plugin import Plugin

plugin = Plugin("implicit_deck", __name__)


@plugin.route("/")
def main():
    return "implicit page"


if __name__ == "__main__":
    ivoryos.run(__name__, host="127.0.0.1", port=int(os.environ["PORT"]), debug=False, blueprint_plugins=[plugin])
'''


def test_plain_ivoryos_run_still_attaches_through_the_plugins_registration(start_server: Any) -> None:
    server = start_server(DECK, name="implicit_deck.py")
    session = ivoryos_login(server.base)  # reads /ivoryos/plugins/csrf.json: the framework's blueprint is there
    status = session.get(f"{server.base}/ivoryos/plugins/status.json").json()
    assert [p["name"] for p in status["plugins"]] == ["implicit_deck"]
    assert status["plugins"][0]["state"] == "running" and status["host"].startswith("IvoryOS")
    page = session.get(f"{server.base}/ivoryos/implicit_deck/")
    assert page.status_code == 200 and page.text == "implicit page"
    assert requests.get(f"{server.base}/ivoryos/implicit_deck/", allow_redirects=False).status_code in (302, 401, 403)


def test_each_app_keeps_its_own_host_header_verdicts(apps: Callable[[str], Flask]) -> None:
    """The Host header's verdicts are remembered per app (in its extension), so two apps of one process
    that name different servers each answer by their own configuration, before and after a change."""
    lab, bench = apps("lab"), apps("bench")
    lab.config["IVORYOS_PLUGIN_ALLOWED_HOSTS"] = "lab.example"
    plugin = make_plugin("hosts_each")
    for app in (lab, bench):
        IvoryOSPlugins(app)
        register(app, plugin)
    assert lab.extensions["ivoryos_plugin"].host_header_verdicts is not bench.extensions["ivoryos_plugin"].host_header_verdicts
    for _ in range(2):  # the second time from the remembered verdicts
        assert lab.test_client().get("/ivoryos/hosts_each/", headers={"Host": "lab.example"}).status_code == 200
        refused = bench.test_client().get("/ivoryos/hosts_each/", headers={"Host": "lab.example"})
        assert refused.status_code == 400 and "lab.example" in refused.text
    bench.config["IVORYOS_PLUGIN_ALLOWED_HOSTS"] = ["lab.example"]  # a changed config is read again
    assert bench.test_client().get("/ivoryos/hosts_each/", headers={"Host": "lab.example"}).status_code == 200
    lab.config["IVORYOS_PLUGIN_ALLOWED_HOSTS"] = ""
    assert lab.test_client().get("/ivoryos/hosts_each/", headers={"Host": "lab.example"}).status_code == 400
