"""A test plugin for the security tests: settings (with free text), static/ and public/ files,
a route for every HTTP method, actions and a Socket.IO handler whose side effects are written to
disk, a route that raises, and ``routes.json`` listing every route of every plugin in the app."""
import json
import os
from typing import Annotated, Literal

from flask import current_app, request
from pydantic import BaseModel, Field

from ivoryos_plugin import Plugin

HERE = os.path.dirname(os.path.abspath(__file__))


class Settings(BaseModel):
    """Free text (escaping), a bounded number, a choice and a flag."""

    label: str = Field("bench", max_length=200)
    limit: int = Field(10, ge=0, le=100)
    mode: Literal["fast", "slow"] = "fast"
    enabled: bool = True


plugin = Plugin("secure", __name__, title="Secure", version="1.0.0", settings=Settings,
                description="security test plugin", max_body=64 * 1024)


def _journal(kind: str, value: object) -> int:
    """Append one line to ``<data>/journal.jsonl`` (what the disk checks look for); the line count."""
    path = plugin.data_dir / "journal.jsonl"
    with open(path, "a+", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "value": value}) + "\n")
        handle.seek(0)
        return sum(1 for _ in handle)


def _count(kind: str) -> int:
    path = plugin.data_dir / "journal.jsonl"
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if json.loads(line)["kind"] == kind)


@plugin.route("/")
def main():
    return plugin.render("secure.html")


@plugin.route("/notes", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def notes():
    if request.method == "GET":
        return {"notes": _count("note")}
    return {"method": request.method, "lines": _journal("note", request.method)}


@plugin.route("/hook", methods=["POST"], public=True)
def hook():
    return {"hook": True}


@plugin.route("/boom")
def boom():
    raise RuntimeError("secure plugin: this route always fails")


@plugin.action(hardware=False)
def record(text: str = "x", times: Annotated[int, Field(ge=1, le=5)] = 1) -> dict:
    return {"lines": _journal("record", {"text": text, "times": times})}


@plugin.action(hardware=False, public=True)
def public_echo(value: str = "") -> dict:
    return {"echo": value}


@plugin.action(hardware=False)
def marks() -> dict:
    """How many ``mark`` events reached the handler (the socket tests' observable side effect)."""
    return {"marks": _count("mark")}


@plugin.on("mark")
def mark(data):
    return {"lines": _journal("mark", data)}


def _files(folder: str, root: str) -> list:
    base = os.path.join(root, folder)
    found = []
    for dirpath, _dirs, files in os.walk(base):
        found += [os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/") for f in files]
    return sorted(found)


@plugin.route("/routes.json")
def routes_json():
    """Every route of every plugin blueprint in this app (Plugins and plain Blueprints)."""
    ext = current_app.extensions["ivoryos_plugin"]
    plugins = {}
    for name, runtime in ext.runtimes.items():
        p = runtime.plugin
        plugins[name] = {
            "kind": "plugin", "state": runtime.state, "root": p.root_path,
            "actions": {a: {"public": spec.public, "schema": spec.model.model_json_schema()}
                        for a, spec in p._actions.items()},
            "static": _files("static", p.root_path), "public": _files("public", p.root_path),
            "public_endpoints": sorted(p._public), "settings": p.settings_model is not None,
        }
    for name, blueprint in ext.plain.items():
        plugins[name] = {"kind": "plain", "state": "running", "root": blueprint.root_path, "actions": {},
                         "static": [], "public": [], "public_endpoints": [], "settings": False}
    rules = []
    for rule in current_app.url_map.iter_rules():
        blueprint, _, endpoint = rule.endpoint.rpartition(".")
        if blueprint in plugins:
            rules.append({"plugin": blueprint, "endpoint": endpoint, "rule": rule.rule,
                          "methods": sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"}),
                          "arguments": sorted(rule.arguments), "defaults": dict(rule.defaults or {})})
    return {"plugins": plugins, "rules": rules}
