"""Other libraries' private names, touched from runtime/libraries.py only: each probed, each failing
safe when the library differs."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator, List, Set, Tuple

import pytest
from flask import Flask

from ivoryos_plugin import Plugin, create_app
from ivoryos_plugin.hosts.devhost import stop
from ivoryos_plugin.runtime import libraries
from ivoryos_plugin.testing import make_deck

PACKAGE = Path(libraries.__file__).resolve().parents[1]


def test_only_the_touch_modules_name_other_libraries_private_hooks() -> None:
    """Flask's hook tables, Werkzeug's socket key and Flask-WTF's salt appear in the runtime's touch
    module only; simple-websocket's and python-engineio's private names in the host's WebSocket
    module only (the transport belongs to the host)."""
    pattern = re.compile(r"\.(before|after)_request_funcs|[\"']werkzeug\.socket|wtf-csrf-token|_HOOK_TABLES"
                         r"|_handle_events|SimpleWebSocketWSGI|_websocket_wsgi")
    allowed = {PACKAGE / "runtime" / "libraries.py", PACKAGE / "hosts" / "websockets.py"}
    found = [f"{path.relative_to(PACKAGE)}:{n}" for path in PACKAGE.rglob("*.py") if path not in allowed
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line) and not line.lstrip().startswith("#")]
    assert found == [], found


def test_flasks_hook_tables_are_read_live_and_refused_when_flask_differs() -> None:
    app = Flask("touch_hooks")
    app.before_request(lambda: None)

    def first() -> None:
        return None

    libraries.before_request_first(app, first)
    assert libraries.app_hooks(app, "before_request_funcs")[0] is first
    app.before_request_funcs = []  # type: ignore[assignment]  # as if Flask kept its hooks another way
    with pytest.raises(RuntimeError, match="verified on Flask"):
        libraries.before_request_first(app, first)


def test_a_plain_environ_gives_no_raw_socket() -> None:
    assert libraries.raw_socket({"wsgi.multithread": True, "SERVER_SOFTWARE": "gunicorn/22"}) is None
    assert libraries.raw_socket({}) is None


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    plugin = Plugin("touchy", __name__, template_folder=None)

    @plugin.route("/")
    def main() -> str:
        return "<html><head></head><body>page</body></html>"  # the framework adds its csrf-token meta

    @plugin.action(hardware=False)
    def ping() -> dict:
        return {"pong": True}

    made = create_app([plugin], deck=make_deck(), data_dir=tmp_path, testing=True)
    try:
        yield made
    finally:
        stop(made)


@pytest.mark.parametrize("salt, cached", [("wtf-csrf-token", "on"), ("another-salt", "not installed")],
                         ids=["flask-wtf-as-verified", "flask-wtf-signing-differently"])
def test_the_csrf_token_cache_is_used_only_when_flask_wtf_signs_as_verified(
        app: Flask, monkeypatch: pytest.MonkeyPatch, salt: str, cached: str) -> None:
    monkeypatch.setattr(libraries, "FLASK_WTF_SALT", salt)
    monkeypatch.delitem(libraries._state, "flask_wtf_token_cache", raising=False)  # probed afresh
    client = app.test_client()
    client.get(f"/ivoryos/?token={app.config['IVORYOS_PLUGIN_TOKEN']}")
    tokens = []
    for _ in range(2):
        page = client.get("/ivoryos/touchy/").get_data(as_text=True)
        tokens.append(re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1))
    assert libraries.touches()["flask_wtf_token_cache"].startswith(cached)
    for token in tokens:  # either way, every token a page carries is one the server accepts
        reply = client.post("/ivoryos/touchy/actions/ping", json={}, headers={"X-CSRFToken": token})
        assert reply.status_code == 200, reply.get_data(as_text=True)


# ------------------------------------------------------------------ one helper each (issue 25)
#: the one module that starts a thread by hand (``start_thread``: daemon, named ``ivoryos_plugin-<what>``)
THREAD_HELPER = PACKAGE / "core" / "clock.py"
#: the framework's threads that are a :class:`threading.Thread` subclass, each with the reason
THREAD_SUBCLASSES = {
    "hardware/serial/reader.py": "the serial reader is a Thread whose stop() wakes and joins itself, "
                                 "pyserial's ReaderThread shape (design: pyserial's Protocol/ReaderThread split)",
}


def thread_starts(source: str) -> List[Tuple[int, str]]:
    """Where ``source`` makes a thread by hand: calls of ``threading.Thread``/``Timer`` (however
    imported) and classes derived from them, as ``(line, what)``."""
    tree = ast.parse(source)
    modules = {"threading"}
    names: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or a.name for a in node.names if a.name == "threading"}
        elif isinstance(node, ast.ImportFrom) and node.module == "threading":
            names |= {a.asname or a.name for a in node.names if a.name in ("Thread", "Timer")}

    def is_thread(expr: ast.expr) -> bool:
        if isinstance(expr, ast.Attribute) and expr.attr in ("Thread", "Timer"):
            return isinstance(expr.value, ast.Name) and expr.value.id in modules
        return isinstance(expr, ast.Name) and expr.id in names

    found = [(n.lineno, "call") for n in ast.walk(tree) if isinstance(n, ast.Call) and is_thread(n.func)]
    found += [(n.lineno, "subclass") for n in ast.walk(tree)
              if isinstance(n, ast.ClassDef) and any(is_thread(b) for b in n.bases)]
    return sorted(found)


def test_thread_starts_are_found_however_threading_is_imported() -> None:
    assert thread_starts("import threading\nthreading.Thread(target=print).start()") == [(2, "call")]
    assert thread_starts("import threading as t\nt.Timer(1, print)") == [(2, "call")]
    assert thread_starts("from threading import Thread as T\nclass R(T):\n    pass\nT()") == [(2, "subclass"), (4, "call")]
    assert thread_starts("import threading\n# threading.Thread( in a comment\nthreading.Event()") == []


def test_the_framework_starts_its_threads_through_the_one_helper(tmp_path: Path) -> None:
    """Every module of the package, and the tests ``ivoryos-plugin new`` generates, start threads with
    ``ivoryos_plugin.core.clock.start_thread`` (or, in a generated project, the kit's ``plugin_server``):
    ``threading.Thread(`` appears in ``core/clock.py`` only."""
    from ivoryos_plugin.tools.scaffold import render_package

    generated = [render_package("threads_tab", tmp_path), render_package("threads_panel", tmp_path, placement="left_panel")]
    sources = [(path, path.relative_to(PACKAGE).as_posix()) for path in PACKAGE.rglob("*.py") if path != THREAD_HELPER]
    sources += [(path, path.relative_to(tmp_path).as_posix()) for folder in generated for path in folder.rglob("*.py")]
    assert len(sources) > 100
    found = [f"{name}:{line} ({what})" for path, name in sources for line, what in thread_starts(path.read_text())
             if not (what == "subclass" and name in THREAD_SUBCLASSES)]
    assert found == [], f"start these threads with ivoryos_plugin.core.clock.start_thread: {found}"


#: the one module that reads TOML, and its public helper
TOML_READER = ("tools/checks/project.py", "load_toml")


def toml_uses(source: str) -> Tuple[bool, Set[str]]:
    """Whether ``source`` imports a TOML parser (``tomllib``, ``tomli``: a standard or vendored one),
    and the names it imports from the one reader's module."""
    parsers, names = False, set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            parsers |= any(a.name.split(".")[0] in ("tomllib", "tomli") for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            parsers |= module.split(".")[0] in ("tomllib", "tomli") or any(a.name == "tomli" for a in node.names)
            if module.endswith("checks.project"):
                names |= {a.name for a in node.names if "toml" in a.name}
    return parsers, names


def test_one_public_helper_reads_toml() -> None:
    """``tools/checks/project.py``'s ``load_toml`` (public, documented) is where the framework reads TOML:
    no other module imports a TOML parser, and the modules that read TOML import the helper by its name."""
    from ivoryos_plugin.tools.checks.project import load_toml

    uses = {path.relative_to(PACKAGE).as_posix(): toml_uses(path.read_text()) for path in PACKAGE.rglob("*.py")}
    assert [name for name, (parsers, _) in uses.items() if parsers] == [TOML_READER[0]]
    imported = {name: names for name, (_, names) in uses.items() if names}
    assert imported and all(names == {TOML_READER[1]} for names in imported.values()), imported
    assert load_toml.__doc__ and ":param text:" in load_toml.__doc__
    assert load_toml('[project]\nname = "balance"\n') == {"project": {"name": "balance"}}
    with pytest.raises(ValueError):
        load_toml("name = ")


#: how the opening docstring of a module over :data:`LONG_MODULE` lines says why (docs/architecture.md, Style)
LONG_BECAUSE = "Over 400 lines on purpose:"
LONG_MODULE = 400


def test_a_module_over_400_lines_says_why_in_its_opening_docstring() -> None:
    """No module of the package is over 400 lines unless its docstring has a line starting with
    ``Over 400 lines on purpose:`` (the reason); otherwise split it by concern."""
    long = {path.relative_to(PACKAGE).as_posix(): path for path in PACKAGE.rglob("*.py")
            if len(path.read_text().splitlines()) > LONG_MODULE}
    unexplained = [name for name, path in sorted(long.items())
                   if not any(line.strip().startswith(LONG_BECAUSE)
                              for line in (ast.get_docstring(ast.parse(path.read_text())) or "").splitlines())]
    assert unexplained == [], (f"modules over {LONG_MODULE} lines: split them, or give the reason in their "
                               f"opening docstring on a line starting with {LONG_BECAUSE!r}: {unexplained}")
