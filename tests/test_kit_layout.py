"""The pytest kit is one folder, ``ivoryos_plugin/tools/testing/`` (issue 25): the old flat modules
still import for one release, each with one DeprecationWarning naming its new path and giving the
same objects; nothing in the repository imports them; and both live clients wait for payloads with
the one loop of ``testing/waiting.py`` (the same deadline, the same failure)."""
from __future__ import annotations

import importlib
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest

import ivoryos_plugin.testing as public
from ivoryos_plugin import Plugin
from ivoryos_plugin.tools.testing import edge, hosts, kit
from support import ROOT

MOVED = {"ivoryos_plugin.tools.pytest_kit": kit, "ivoryos_plugin.tools.pytest_hosts": hosts,
         "ivoryos_plugin.tools.pytest_edge": edge}


@pytest.fixture
def fresh_imports() -> Iterator[None]:
    """Each old module imported anew in the test (its warning is given once, on import), and put back
    as it was afterwards."""
    before = {name: sys.modules.pop(name) for name in MOVED if name in sys.modules}
    try:
        yield
    finally:
        for name in MOVED:
            sys.modules.pop(name, None)
        sys.modules.update(before)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_once_naming_the_new_one_and_gives_the_same_objects(old: str, fresh_imports: None) -> None:
    new = MOVED[old]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        __import__(old)  # as an ``import`` statement does (the warning points at this line)
        __import__(old)  # a second import is the cached module: no second warning
    module = sys.modules[old]
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in caught]
    message = str(deprecations[0].message)
    assert f"{old} is now {new.__name__}" in message and "ivoryos_plugin.testing" in message, message
    assert deprecations[0].filename == __file__, "the warning points at the importer's line"
    assert module.__all__ == new.__all__ and new.__all__
    assert all(getattr(module, name) is getattr(new, name) for name in new.__all__)
    others = [name for name in vars(new) if name not in new.__all__ and not name.startswith("__")]
    assert others and all(getattr(module, name) is getattr(new, name) for name in others), others


def test_under_the_repositorys_filterwarnings_an_old_path_is_an_error(fresh_imports: None) -> None:
    """pytest.ini turns warnings into errors, so nothing in the repository can import an old path unseen."""
    with pytest.raises(DeprecationWarning, match="ivoryos_plugin.tools.testing.kit"):
        importlib.import_module("ivoryos_plugin.tools.pytest_kit")


def test_the_public_kit_is_the_folders_objects() -> None:
    assert all(getattr(public, name) is getattr(kit, name) for name in kit.__all__)
    assert public.PluginHost is hosts.PluginHost and hosts.EdgeLive is edge.EdgeLive


def test_nothing_in_the_repository_imports_an_old_path() -> None:
    old = re.compile(r"(import|from)\s+[\w.]*\b(pytest_kit|pytest_hosts|pytest_edge)\b"
                     r"|\"[\w.]*tools\.pytest_(kit|hosts|edge)\"")
    shims = {ROOT / "ivoryos_plugin" / "tools" / f"pytest_{n}.py" for n in ("kit", "hosts", "edge")}
    files = [p for folder in ("ivoryos_plugin", "tests", "examples", "docs") for p in (ROOT / folder).rglob("*")
             if p.suffix in (".py", ".tmpl", ".md", ".ini", ".cfg", ".toml") and p.is_file()
             and p not in shims and p != Path(__file__)]
    files += [ROOT / "conftest.py", ROOT / "pytest.ini", ROOT / "setup.py"]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in files for n, line in enumerate(p.read_text().splitlines(), 1)
             if old.search(line)]
    assert len(files) > 100 and found == [], found


# ---------------------------------------------------------------- the one wait of both live clients
waits = Plugin("kit_waits", __name__, template_folder=None)


@waits.route("/")
def main() -> str:
    return "kit waits"


@waits.on("say")
def say(data: Any) -> Dict[str, Any]:
    waits.publish("said", data)
    return {"ok": True}


@pytest.fixture
def plugin() -> Plugin:
    """The plugin the kit's hosts serve in this module."""
    return waits


def test_wait_for_returns_what_arrived_and_fails_at_its_deadline_naming_it(plugin_host: Any) -> None:
    live = plugin_host.live
    assert live.call("say", {"n": 1}) == {"ok": True}
    assert live.call("say", {"n": 2}) == {"ok": True}
    assert live.wait_for("said", 2, timeout=5) == [{"n": 1}, {"n": 2}]
    started = time.monotonic()
    with pytest.raises(AssertionError) as failure:
        live.wait_for("said", 3, timeout=0.5)
    waited = time.monotonic() - started
    # what arrived, in order, as each host's client has it (the edge's channel sends deck states too)
    message = str(failure.value)  # (the deck's own events may arrive in between: counted, not placed)
    found = re.fullmatch(r"'said': received 2 of 3 within 0\.5 s; got \[(.*)\]", message)
    assert found and found.group(1).split(", ").count("'said'") == 2, message
    assert 0.5 <= waited < 5.0, waited  # at its deadline, not at the first wait's 5 s
