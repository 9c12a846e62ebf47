"""Security round three, the tools (issue 23): ``ivoryos-plugin migrate`` never follows a link out
of the source tree (a key linked into ``static/``, a folder linked to ``/``, a loop), names what it
skipped, writes a ``pyproject.toml`` that keeps any metadata as it was (quotes, line breaks, ``]``,
unicode) and leaves no staging folder whatever happens; ``ivoryos-plugin new`` refuses the names
Python or pytest treat specially and over-long ones, in one line, writing nothing.

The source is laid out as the official IvoryOS plugin template (a package named ``ivoryos_plugin``
with a Blueprint, ``templates/``, ``static/`` and a ``pyproject.toml`` with ``[project.urls]``); the
real CLI runs it, in a subprocess or through click's runner."""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import pytest
from click.testing import CliRunner

from ivoryos_plugin.core.names import MAX_PACKAGE_NAME
from ivoryos_plugin.tools.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - requirements.txt installs tomli there
    import tomli as tomllib

SECRET = "-----BEGIN PRIVATE KEY----- issue-23 lab secret, never to be shipped -----END PRIVATE KEY-----"

PLUGIN = '''"""A balance page, written as the official IvoryOS plugin template writes plugins."""
import os

from flask import Blueprint, current_app, render_template

from ivoryos import global_state

plugin = Blueprint("plugin", __name__, template_folder=os.path.join(os.path.dirname(__file__), "templates"))
plugin.plugin_type = "tab"

socketio = None


def init_socketio(sio):
    """Attach SocketIO to this plugin."""
    global socketio
    socketio = sio

    @socketio.on("plugin_ping")
    def handle_ping(data=None):
        socketio.emit("plugin_pong", {"ok": True})


plugin.init_socketio = init_socketio


@plugin.route("/")
def main():
    base_exists = "base.html" in current_app.jinja_loader.list_templates()
    return render_template("example.html", base_exists=base_exists, deck=global_state.deck)
'''

PAGE = """{% if base_exists %}
    {% extends 'base.html' %}
    {% block title %}Balance{% endblock %}
{% else %}
    <html lang="en"><head><meta charset="UTF-8"></head>
{% endif %}
{% block body %}
    <link rel="stylesheet" href="{{ url_for('plugin.static', filename='style.css') }}">
    <div id="balance">Balance</div>
    <script>const socket = io();</script>
{% endblock %}
"""

#: [project.urls] keys and values that broke the hand-written TOML: quotes, a line break, "]",
#: "=", a table header, unicode
URLS = {
    "Homepage": "https://example.org/lab/balance",
    'Bug "tracker"]\n[tool.evil]\nx = 1': 'https://example.org/a"b\nc]',
    "Dökümentation ✓ = [x]": "https://example.org/ü",
    "[project]": "https://example.org/'single' and \\backslash",
}
#: the rest of the [project] table, as hostile; ``readme`` and ``license`` point at the secret
#: from where the new project is written (setuptools would read them into the package's metadata)
PROJECT = {
    "name": 'ivoryos_plugin"]\n[evil]',
    "version": "0.2.0",
    "description": 'Balance "page"]\n[injected]\ncontent = 1, ünïcødé ✓',
    "readme": "../../outside/secret.pem",
    "license": {"file": "../../outside/secret.pem"},
    "authors": [{"name": 'O\'Brien "Bob"]\n[x]', "email": "bob@example.org"}],
    "keywords": ["a]b", 'q"uote', "new\nline", "ünï"],
    "dependencies": ["ivoryos", 'requests>=2; python_version >= "3.8"'],
}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string, escaped by hand (the source file is written without the
    library under test)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def hostile_pyproject() -> str:
    authors = ", ".join("{ " + ", ".join(f"{k} = {toml_string(v)}" for k, v in a.items()) + " }"
                        for a in PROJECT["authors"])
    lines = ['[build-system]', 'requires = ["setuptools>=61.0"]', 'build-backend = "setuptools.build_meta"', "",
             "[project]",
             f"name = {toml_string(PROJECT['name'])}",
             f"version = {toml_string(PROJECT['version'])}",
             f"description = {toml_string(PROJECT['description'])}",
             f"readme = {toml_string(PROJECT['readme'])}",
             f"license = {{ file = {toml_string(PROJECT['license']['file'])} }}",
             f"authors = [{authors}]",
             f"keywords = [{', '.join(toml_string(k) for k in PROJECT['keywords'])}]",
             f"dependencies = [{', '.join(toml_string(d) for d in PROJECT['dependencies'])}]",
             "", "[project.urls]"] + [f"{toml_string(k)} = {toml_string(v)}" for k, v in URLS.items()]
    text = "\n".join(lines) + "\n"
    parsed = tomllib.loads(text)
    assert parsed["project"]["urls"] == URLS and parsed["project"]["authors"] == PROJECT["authors"]
    return text


def hostile_template(base: Path) -> Path:
    """The template-style project ``base/template`` and, beside it, ``base/outside/secret.pem``:
    links to the secret (a file in static/, the README), a folder linked to ``/``, a link to
    itself, a link to a folder of the tree (a loop), and a link to a file inside the tree."""
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.pem").write_text(SECRET)
    project = base / "template"
    package = project / "ivoryos_plugin"
    (package / "templates").mkdir(parents=True)
    (package / "static").mkdir()
    (package / "__init__.py").write_text('"""The plugin."""\n')
    (package / "plugin.py").write_text(PLUGIN)
    (package / "templates" / "example.html").write_text(PAGE)
    (package / "static" / "style.css").write_text("#balance { color: teal }\n")
    (package / "static" / "key.pem").symlink_to(outside / "secret.pem")
    (package / "static" / "rootfs").symlink_to("/", target_is_directory=True)
    (package / "static" / "loop").symlink_to("loop")
    (package / "static" / "up").symlink_to("..", target_is_directory=True)
    (package / "static" / "alias.css").symlink_to("style.css")
    (project / "README.md").symlink_to(outside / "secret.pem")
    (project / "LICENSE").write_text("MIT\n")
    (project / "pyproject.toml").write_text(hostile_pyproject())
    return project


#: what migrate must name as skipped (a line each), and a word of why
SKIPPED = {
    "ivoryos_plugin/static/key.pem": "outside the source tree",
    "ivoryos_plugin/static/rootfs": "outside the source tree",
    "ivoryos_plugin/static/loop": "loops back on itself",
    "ivoryos_plugin/static/up": "linked folders are not copied",
    "README.md": "outside the source tree",
}


def listing(folder: Path) -> List[str]:
    return sorted(os.listdir(folder)) if folder.exists() else []


def files_under(folder: Path) -> Dict[str, bytes]:
    """Every entry below ``folder`` (links not followed): path -> bytes (b"<link>" for a link)."""
    found: Dict[str, bytes] = {}
    for where, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(where) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                found[rel] = b"<link>"
            elif path.is_file():
                found[rel] = path.read_bytes()
    return found


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real CLI in a process of its own."""
    return subprocess.run([sys.executable, "-m", "ivoryos_plugin.tools.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def staged_in_tmp(name: str) -> List[str]:
    return sorted(n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f".{name}-"))


# ------------------------------------------------------------------ migrate: links, TOML, staging
def test_migrate_reads_nothing_outside_the_tree_and_names_what_it_skipped(tmp_path: Path) -> None:
    source = hostile_template(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    before_tmp = staged_in_tmp("lab_safe")
    started = time.monotonic()
    result = run_cli("migrate", str(source), "--name", "lab_safe", "--dir", str(out))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and took < 30, (took, result.stderr)
    # no staging folder beside the new project, nor in the temp folder
    assert listing(out) == ["lab_safe"]
    assert staged_in_tmp("lab_safe") == before_tmp
    made = files_under(out / "lab_safe")
    # nothing outside the tree was copied: no link, not the secret, not the file system
    assert [p for p, data in made.items() if data == b"<link>"] == []
    assert [p for p, data in made.items() if SECRET.encode() in data] == []
    assert SECRET not in result.stdout + result.stderr
    assert len(made) < 30 and sum(len(d) for d in made.values()) < 100_000, sorted(made)
    assert not any(p.startswith("lab_safe/static/rootfs") or p.startswith("lab_safe/static/up") for p in made)
    # a link to a file inside the tree is copied as that file
    assert made["lab_safe/static/alias.css"] == made["lab_safe/static/style.css"] == b"#balance { color: teal }\n"
    assert "README.md" not in made and made["LICENSE"] == b"MIT\n"
    # each skipped link named on one line, with why
    lines = result.stdout.splitlines()
    for path, why in SKIPPED.items():
        named = [line for line in lines if line.startswith(f"  skipped {path}: ")]
        assert len(named) == 1 and why in named[0], (path, result.stdout)
    assert len([line for line in lines if line.startswith("  skipped ")]) == len(SKIPPED), result.stdout
    # the source is left as it was
    assert (source / "ivoryos_plugin" / "static" / "key.pem").is_symlink()


def test_migrate_writes_a_pyproject_that_keeps_hostile_metadata(tmp_path: Path) -> None:
    source = hostile_template(tmp_path)
    result = CliRunner().invoke(main, ["migrate", str(source), "--name", "lab_safe", "--dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "lab_safe" / "pyproject.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    project = data["project"]
    assert project["urls"] == URLS  # every key and value, as it was
    assert project["authors"] == PROJECT["authors"] and project["keywords"] == PROJECT["keywords"]
    assert project["version"] == "0.2.0"
    assert project["description"] == 'Balance "page"] [injected] content = 1, ünïcødé ✓'  # a summary is one line
    assert project["dependencies"] == ["ivoryos-plugin-framework", "ivoryos", 'requests>=2; python_version >= "3.8"']
    assert project["name"] == "ivoryos-lab-safe-plugin"
    assert "evil" not in data.get("tool", {}) and set(data) == {"build-system", "project", "tool"}
    assert data["project"]["entry-points"] == {"ivoryos.plugins": {"lab_safe": "lab_safe.plugin:plugin"}}
    assert data["tool"]["setuptools"]["package-data"] == {"lab_safe": ["templates/**/*", "static/**/*"]}
    # a readme or license file outside the new project would be read into the wheel's metadata
    assert "readme" not in project and "license" not in project
    assert "license = {'file': '../../outside/secret.pem'} was left out" in result.output


def test_a_page_title_cannot_break_out_of_the_generated_code(tmp_path: Path) -> None:
    title = 'Stirrer """ + __import__("os").system("echo pwned") + """ \\ "quoted" ]\n[x]'
    page = tmp_path / 'evil"""page.html'
    page.write_text(f"<!doctype html><html><head><title>{title}</title></head><body>hi</body></html>")
    result = CliRunner().invoke(main, ["migrate", "--from-html", str(page), "--name", "stirrer_safe",
                                       "--dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    package = tmp_path / "out" / "stirrer_safe"
    shown = " ".join(title.split())
    for module in ("plugin.py", "__init__.py"):
        tree = ast.parse((package / "stirrer_safe" / module).read_text(encoding="utf-8"))
        assert shown in (ast.get_docstring(tree) or ""), module
        assert not any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "__import__" for n in ast.walk(tree))
    call = next(n for n in ast.walk(ast.parse((package / "stirrer_safe" / "plugin.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Plugin")
    assert [k.value.value for k in call.keywords if k.arg == "title"] == [shown]  # type: ignore[attr-defined]
    assert tomllib.loads((package / "pyproject.toml").read_text())["project"]["description"].startswith(shown)


def test_a_failed_migration_leaves_nothing_behind(tmp_path: Path) -> None:
    source = hostile_template(tmp_path)
    (source / "ivoryos_plugin" / "broken.py").write_text("def broken(:\n")
    where = tmp_path / "new" / "deeper"
    result = run_cli("migrate", str(source), "--name", "lab_safe", "--dir", str(where))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "ivoryos_plugin/broken.py cannot be converted" in result.stderr and "Nothing was written" in result.stderr
    assert listing(tmp_path) == ["outside", "template"]  # no output folder, no staging folder, no --dir made


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_migration_leaves_no_staging_folder(tmp_path: Path, sig: signal.Signals) -> None:
    """The real CLI, sent a real signal while it converts the pages (the staging folder is full)."""
    source = hostile_template(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    child = (
        "import os, signal, sys\n"
        "import ivoryos_plugin.tools.migrate.project as migrate\n"
        "real = migrate.convert_page\n"
        "def interrupted(*args, **kwargs):\n"
        f"    os.kill(os.getpid(), {int(sig)})\n"
        "    return real(*args, **kwargs)\n"
        "migrate.convert_page = interrupted\n"
        "from ivoryos_plugin.tools.cli import main\n"
        "main(sys.argv[1:], prog_name='ivoryos-plugin')\n")
    result = subprocess.run([sys.executable, "-c", child, "migrate", str(source), "--name", "lab_safe", "--dir",
                             str(out)], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1 and "Aborted!" in result.stderr, (result.returncode, result.stderr)
    assert listing(out) == []


def test_migrate_refuses_a_special_name(tmp_path: Path) -> None:
    source = hostile_template(tmp_path)
    result = CliRunner().invoke(main, ["migrate", str(source), "--name", "sitecustomize", "--dir", str(tmp_path / "o")])
    assert result.exit_code == 1 and "'sitecustomize_plugin'" in result.output, result.output
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ new: names
BAD_NAMES = [
    ("sitecustomize", "imported by every Python interpreter", "'sitecustomize_plugin'"),
    ("usercustomize", "imported by every Python interpreter", "'usercustomize_plugin'"),
    ("conftest", "pytest imports each 'conftest'", "'conftest_plugin'"),
    ("__init__", "double-underscore module names are Python's own", "'init_plugin'"),
    ("__main__", "double-underscore module names are Python's own", "'main_plugin'"),
    ("os", "a Python module named 'os' already exists", "'os_plugin'"),
    ("json", "a Python module named 'json' already exists", "'json_plugin'"),
    ("test", "a Python module named 'test' already exists", "'test_plugin'"),
    ("class", "must be a Python identifier", "'class_plugin'"),
    ("1st_balance", "not starting with a digit", "'p_1st_balance'"),
    ("my-plugin", "must be a Python identifier", "'my_plugin'"),
    ("a" * (MAX_PACKAGE_NAME + 1), f"is {MAX_PACKAGE_NAME + 1} characters long", f"at most {MAX_PACKAGE_NAME}"),
    ("b" * 301, "is 301 characters long", "choose a shorter name, e.g. 'bbbb"),
]


@pytest.mark.parametrize("name, why, fix", BAD_NAMES, ids=[
    "sitecustomize", "usercustomize", "conftest", "dunder-init", "dunder-main", "stdlib-os", "stdlib-json",
    "stdlib-test", "keyword", "leading-digit", "not-an-identifier", "one-over-the-limit", "301-characters"])
def test_new_refuses_a_special_or_long_name_in_one_line(tmp_path: Path, name: str, why: str, fix: str) -> None:
    result = CliRunner().invoke(main, ["new", name, "--dir", str(tmp_path / "plugins")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert why in lines[0] and fix in lines[0], lines[0]
    assert len(lines[0]) < 320  # a long name is shown cut, not in full
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", ["sitecustomize", "c" * 301], ids=["sitecustomize", "301-characters"])
def test_new_refuses_in_the_real_cli_process(tmp_path: Path, name: str) -> None:
    result = run_cli("new", name, "--dir", str(tmp_path / "plugins"))
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: Plugin '") and "choose" in result.stderr
    assert listing(tmp_path) == []


def test_new_takes_a_name_of_exactly_the_limit(tmp_path: Path) -> None:
    name = "balance_" + "x" * (MAX_PACKAGE_NAME - len("balance_"))
    result = CliRunner().invoke(main, ["new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / name / name / "plugin.py").is_file() and listing(tmp_path) == [name]


def test_a_file_swapped_for_a_link_or_a_pipe_after_the_check_is_not_read(tmp_path: Path) -> None:
    """migrate checks each file, then opens it without following a link and without waiting on a
    pipe: what is put in the file's place in between is refused, not read."""
    from ivoryos_plugin.tools.migrate.tree import _read

    (tmp_path / "secret.pem").write_text(SECRET)
    (tmp_path / "style.css").symlink_to(tmp_path / "secret.pem")
    os.mkfifo(tmp_path / "page.html")
    started = time.monotonic()
    for swapped in ("style.css", "page.html"):
        with pytest.raises(OSError):
            _read(str(tmp_path / swapped))
    assert time.monotonic() - started < 5
