"""The README's code is the code the tests run."""
from __future__ import annotations

import re

from support import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(lang: str) -> list:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_shows_the_hello_plugin_verbatim() -> None:
    source = (ROOT / "examples/hello/hello_plugin/plugin.py").read_text(encoding="utf-8")
    assert source in blocks("python"), "README's tutorial differs from examples/hello/hello_plugin/plugin.py"
    assert len(source.splitlines()) <= 20 + 2, "the hello example should stay within 20 lines of Python"


def test_readme_shows_the_hello_template_verbatim() -> None:
    template = (ROOT / "examples/hello/hello_plugin/templates/hello.html").read_text(encoding="utf-8")
    assert template in blocks("html"), "run: python scripts/docs_snippets.py"


def test_readme_commands_match_ci() -> None:
    bash = "".join(blocks("bash"))
    ci = (ROOT / ".ci/run").read_text()
    test_command = "./scripts/install.sh --test && .venv/bin/python -m pytest"
    assert test_command in bash and ci.strip().endswith(test_command)
    assert "./scripts/install.sh && .venv/bin/ivoryos-plugin demo" in bash


def readme_deck() -> str:
    """The README's deck script (the block that calls ivoryos.run)."""
    return next(b for b in blocks("python") if "ivoryos.run(" in b)


def test_docs_snippets_are_the_code_the_tests_run() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_snippets", ROOT / "scripts" / "docs_snippets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.stale() == [], "run: python scripts/docs_snippets.py"
    for doc in (ROOT / "docs").glob("*.md"):
        text = doc.read_text(encoding="utf-8")
        unmarked = re.findall(r"(?<!-->\n)```(python|html|toml)\n", text)
        assert not unmarked, f"{doc.name}: a {unmarked[0]} block without a snippet marker"
