"""Plugin declaration and registration: every mistake raises at registration with a message that
names the plugin and the fix."""
from __future__ import annotations

import pytest
from flask import Flask

from ivoryos_plugin import Plugin, PluginError, create_app
from ivoryos_plugin.hosts import ivoryos as adapter


@pytest.mark.parametrize("name, match", [
    ("my-plugin", r"Plugin 'my-plugin': the name must be a Python identifier.*use 'my_plugin'"),
    ("2fast", r"Plugin '2fast': the name must be a Python identifier.*'p_2fast'"),
    ("class", r"Plugin 'class': the name must be a Python identifier"),
    ("", r"non-empty string"),
], ids=["dash", "leading-digit", "keyword", "empty"])
def test_invalid_identifier_names_are_refused(name: str, match: str) -> None:
    with pytest.raises(PluginError, match=match):
        Plugin(name, __name__)


@pytest.mark.parametrize("name", ["main", "auth", "library", "control", "design", "execute", "data"])
def test_ivoryos_builtin_names_are_refused(name: str) -> None:
    with pytest.raises(PluginError, match=rf"Plugin '{name}': '{name}' is the name of an IvoryOS built-in page "
                                          rf"and would replace it; choose another name, e.g. '{name}_plugin'"):
        Plugin(name, __name__)


@pytest.mark.parametrize("name", ["agent", "draft", "executions", "files", "help", "instruments", "static",
                                  "plugins"])
def test_names_whose_urls_collide_are_refused(name: str) -> None:
    with pytest.raises(PluginError, match=rf"Plugin '{name}': the URL /ivoryos/{name}/ is already served"):
        Plugin(name, __name__)


def test_bad_placement_and_versions_are_refused() -> None:
    with pytest.raises(PluginError, match=r"Plugin 'p': placement='sidebar' is unknown; use 'tab', 'left_panel' or 'right_panel'"):
        Plugin("p", __name__, placement="sidebar")
    with pytest.raises(PluginError, match=r"Plugin 'p': version='1.0-beta' is not a numeric dotted version"):
        Plugin("p", __name__, version="1.0-beta")
    with pytest.raises(PluginError, match=r"Plugin 'p': min_ivoryos='latest' is not a numeric dotted version"):
        Plugin("p", __name__, min_ivoryos="latest")
    with pytest.raises(PluginError, match=r"Plugin 'p': settings=.* is not a pydantic v2 model class"):
        Plugin("p", __name__, settings=dict)  # type: ignore[arg-type]


def test_missing_main_endpoint_fails_at_registration() -> None:
    plugin = Plugin("nomain", __name__)

    @plugin.route("/other")
    def other() -> str:
        return "x"

    with pytest.raises(PluginError, match=r"Plugin 'nomain': has no 'main' endpoint, which IvoryOS's nav links "
                                          r"to \(nomain.main\); add a page at '/'"):
        Flask(__name__).register_blueprint(plugin, url_prefix="/ivoryos/nomain")


def test_missing_widget_endpoint_fails_for_a_left_panel() -> None:
    plugin = Plugin("panel", __name__, placement="left_panel")

    @plugin.route("/")
    def main() -> str:
        return "x"

    assert plugin.plugin_type == "left_panel"
    with pytest.raises(PluginError, match=r"Plugin 'panel': has no 'widget' endpoint.*panel.widget"):
        Flask(__name__).register_blueprint(plugin, url_prefix="/ivoryos/panel")


@pytest.mark.parametrize("installed, needed, ok", [
    ("1.7.2", "1.7.2", True), ("1.7.2", "1.6", True), ("1.7.2", "1.8.0", False), ("1.7.2", "2", False),
], ids=["equal", "older-needed", "newer-minor", "newer-major"])
def test_min_ivoryos_is_checked_at_registration(monkeypatch: pytest.MonkeyPatch, tmp_path, installed: str,
                                                 needed: str, ok: bool) -> None:
    monkeypatch.setattr(adapter, "installed_version", lambda: installed)
    plugin = Plugin("versioned", __name__, min_ivoryos=needed)

    @plugin.route("/")
    def main() -> str:
        return "x"

    if ok:
        app = create_app([plugin], data_dir=tmp_path, testing=True)
        assert "versioned.main" in app.view_functions
        from ivoryos_plugin.hosts.devhost import stop
        stop(app)
    else:
        with pytest.raises(PluginError, match=rf"Plugin 'versioned': needs IvoryOS >= {needed} but {installed} is "
                                              rf"installed; upgrade with: pip install 'ivoryos>={needed}'"):
            create_app([plugin], data_dir=tmp_path, testing=True)


def test_real_installed_ivoryos_too_old_message() -> None:
    from importlib.metadata import version

    plugin = Plugin("future", __name__, min_ivoryos="99.0")

    @plugin.route("/")
    def main() -> str:
        return "x"

    with pytest.raises(PluginError, match=rf"needs IvoryOS >= 99.0 but {version('ivoryos')} is installed"):
        Flask(__name__).register_blueprint(plugin, url_prefix="/ivoryos/future")


def test_duplicate_declarations_are_refused() -> None:
    plugin = Plugin("dups", __name__)

    @plugin.stream("flow", hz=1)
    def flow() -> int:
        return 1

    with pytest.raises(PluginError, match=r"Plugin 'dups': stream 'flow' is registered twice; pass name= to tell "
                                          r"them apart"):
        plugin.stream("flow", hz=1)(flow)

    @plugin.action
    def go() -> None:
        return None

    with pytest.raises(PluginError, match=r"Plugin 'dups': action 'go' is registered twice"):
        plugin.action(go)
    with pytest.raises(PluginError, match=r"Plugin 'dups': stream 'bad': hz=0 must be a number"):
        plugin.stream("bad", hz=0)(flow)
    with pytest.raises(PluginError, match=r"Plugin 'dups': event 'connect' is handled by the framework"):
        plugin.on("connect")(flow)


def test_decorators_return_the_function_and_setup_after_registration_raises(tmp_path) -> None:
    plugin = Plugin("decor", __name__)

    def main() -> str:
        return "x"

    assert plugin.route("/")(main) is main

    def tick() -> None:
        return None

    assert plugin.worker(every=1)(tick) is tick
    assert plugin.action(hardware=False)(tick) is tick
    assert plugin.on_start(tick) is tick
    app = create_app([plugin], data_dir=tmp_path, testing=True)
    from ivoryos_plugin.hosts.devhost import stop
    stop(app)
    with pytest.raises(AssertionError, match="can no longer be called"):
        plugin.action(name="late")(tick)
    with pytest.raises(AssertionError, match="can no longer be called"):
        plugin.route("/late")(tick)


def test_runtime_properties_before_registration_explain_the_fix() -> None:
    plugin = Plugin("unregistered", __name__)
    with pytest.raises(PluginError, match=r"Plugin 'unregistered': is not registered in an app yet; pass it to "
                                          r"ivoryos.run\(blueprint_plugins="):
        plugin.instrument("balance")


def test_action_signatures_that_cannot_be_served_are_refused() -> None:
    plugin = Plugin("sigs", __name__)

    def star(*args: int) -> None:
        return None

    with pytest.raises(PluginError, match=r"Plugin 'sigs': action 'star': \*args is not supported"):
        plugin.action(star)


def test_record_keeps_its_flask_meaning_and_the_old_value_spelling_warns() -> None:
    import warnings

    from flask import Flask

    from ivoryos_plugin import Plugin, PluginError

    plugin = Plugin("recorder", __name__, template_folder=None)

    @plugin.route("/")
    def main() -> str:
        return "main"

    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Flask's own call of Blueprint.record warns nothing
        plugin.record(lambda state: seen.append(state.app.name))
        Flask("recorder_app").register_blueprint(plugin)
    assert seen == ["recorder_app"]
    with pytest.warns(DeprecationWarning, match=r"plugin.record_value\(name, value\)"):
        with pytest.raises(PluginError, match="not registered in an app yet"):
            Plugin("old_spelling", __name__, template_folder=None).record("yield_mg", 12.4)
    with pytest.raises(PluginError, match="record_value"):
        plugin.record_value("", 1.0)


def test_plugin_is_one_class_whatever_the_import_path_and_its_parts_stay_small() -> None:
    """core/plugin.py is split by concern (issue 25); the two import paths give the same class."""
    from pathlib import Path

    import ivoryos_plugin
    from ivoryos_plugin.core import plugin as module

    assert module.Plugin is ivoryos_plugin.Plugin
    parts = ("plugin", "base", "interface", "workflow", "hooks", "live_state")
    core = Path(module.__file__).parent
    sizes = {name: len((core / f"{name}.py").read_text().splitlines()) for name in parts}
    assert max(sizes.values()) <= 400, sizes
    for member in ("action", "stream", "on", "step", "camera", "worker", "on_start", "publish", "record_value",
                   "settings", "instrument", "observe", "declarations", "render"):
        assert hasattr(ivoryos_plugin.Plugin, member), member
