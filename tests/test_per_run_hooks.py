"""Per-run hooks belong to the run (issue 25: no module-level per-app state): what
``ivoryos_plugin.run`` arms for its app (the hardening's install, a caller's ``extension=`` hooks and
failures) goes to that run's ``IvoryOSPlugins``, never to a blueprint the module shares, so another
app built in the same process (an edge plugin's app, a dev host, a test's app) gets none of it, even
while the launch is under way."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Blueprint

import ivoryos_plugin
from support import ROOT, free_port

#: Two apps in one process through the public entry points: ``ivoryos_plugin.run`` (hardening on) in a
#: thread, held at the launcher's step after ``hardening.arm`` (its allocator call: a trace function
#: blocks it there); meanwhile ``for_edge`` builds an edge plugin's app (it registers the framework's
#: assets blueprint) and ``create_app`` a dev host; then the launch goes on. IVORYOS_ACTIVE makes
#: ``ivoryos.run`` return at once: only the launcher's own steps run, nothing listens.
SCRIPT = r'''
import json, os, sys, threading
from pathlib import Path

os.environ["IVORYOS_ACTIVE"] = "1"
import ivoryos_plugin
from ivoryos_plugin import Plugin, create_app
import importlib.util
import ivoryos_plugin.edge
from ivoryos_plugin.hosts.allocator import steady_allocator
from ivoryos_plugin.tools.demo import demo_config

folder, port = Path(sys.argv[1]), int(sys.argv[2])
in_window, go = threading.Event(), threading.Event()


def hold(frame, event, arg):
    if event == "call" and frame.f_code is steady_allocator.__code__:
        in_window.set()
        go.wait(60)


def page_plugin(name):
    plugin = Plugin(name, "__main__")

    @plugin.route("/", public=True)
    def main():
        return name

    return plugin


launch_error = []


def launch():
    try:
        ivoryos_plugin.run(None, port=port, config=demo_config(folder / "ivoryos", port),
                           plugins=[page_plugin("first")])
    except BaseException as exc:
        launch_error.append(f"{type(exc).__name__}: {exc}")


threading.settrace(hold)
thread = threading.Thread(target=launch)
thread.start()
threading.settrace(None)
result = {"held": in_window.wait(60)}
try:
    if importlib.util.find_spec("ivoryos_edge") is None:  # without the [edge] extra: the dev host below only
        raise ModuleNotFoundError("ivoryos_edge")
    edge_app = ivoryos_plugin.edge.for_edge(page_plugin("second")).runtime_app
    result["edge_hardening"] = edge_app.ext.hardening()
    result["edge_hooks"] = sum(len(f.hooks) for f in edge_app.ext.frameworks)
except ModuleNotFoundError:
    result["edge_absent"] = True
except BaseException as exc:
    result["edge_error"] = f"{type(exc).__name__}: {exc}"
dev = create_app([page_plugin("third")], data_dir=folder / "dev", testing=True)
result["dev_hardening"] = dev.extensions["ivoryos_plugin"].hardening()
go.set()
thread.join(60)
result["launch_error"] = launch_error

# then a launch that serves: the caller's extension brings a failure and a hook, which run on IvoryOS's app only
del os.environ["IVORYOS_ACTIVE"]
attached = threading.Event()


def seen(app, ext):
    result["hook_app"] = app.import_name
    result["hook_hardening"] = sorted({item["state"] for item in ext.hardening()})
    result["hook_failures"] = [f["name"] for f in ext.failures]
    attached.set()


failure = {"name": "broken", "stage": "import", "error": "ImportError: x", "traceback": ""}
extension = ivoryos_plugin.IvoryOSPlugins(failures=[failure], on_attach=[seen])
threading.Thread(target=ivoryos_plugin.run, daemon=True, args=(None,),
                 kwargs=dict(port=port, config=demo_config(folder / "served", port), plugins=[page_plugin("fourth")],
                             extension=extension)).start()
result["attached"] = attached.wait(120)
result["extension_hooks"] = len(extension.hooks)
(folder / "result.json").write_text(json.dumps(result))
os._exit(0)
'''


def test_an_app_built_while_a_hardened_launch_is_under_way_gets_none_of_its_hooks(tmp_path: Path) -> None:
    script = tmp_path / "two_apps.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    env.pop("IVORYOS_ACTIVE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, str(script), str(tmp_path), str(free_port())], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert (tmp_path / "result.json").is_file(), done.stdout + done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["held"], result  # the edge app and the dev host were built inside the launch's window
    assert "edge_error" not in result, result  # the first run's install did not run on the edge's app
    if not result.get("edge_absent"):  # with the [edge] extra (as the suite installs it)
        assert result["edge_hardening"] == [] and result["edge_hooks"] == 0, result
    assert result["dev_hardening"] == [], result
    assert result["launch_error"] == [], result  # the launch went on, its own hooks intact
    # a launch's own extension: its hook runs on IvoryOS's app once hardened, its failures reach the health page
    assert result["attached"] and result["hook_app"] == "ivoryos.app", result
    assert result["hook_hardening"] == ["on"] and result["hook_failures"] == ["broken"], result
    assert result["extension_hooks"] == 1, result  # the caller's object is left as it was given


def test_a_run_extension_with_plain_blueprints_is_refused_with_the_fix() -> None:
    """The run serves what ``blueprint_plugins=`` lists: plain Blueprints in ``extension=`` would be
    protected and named in the nav but never registered, so the run refuses them before anything starts."""
    extension = ivoryos_plugin.IvoryOSPlugins(plain=[Blueprint("legacy_page", __name__)])
    with pytest.raises(TypeError, match=r"\(legacy_page\): give them in blueprint_plugins=\[\.\.\.\]"):
        ivoryos_plugin.run(extension=extension)
