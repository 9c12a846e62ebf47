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
    assert template in blocks("html")


def test_readme_commands_match_ci() -> None:
    bash = "".join(blocks("bash"))
    ci = (ROOT / ".ci/run").read_text()
    test_command = "./scripts/install.sh --test && .venv/bin/python -m pytest"
    assert test_command in bash and ci.strip().endswith(test_command)
    assert "./scripts/install.sh && .venv/bin/ivoryos-plugin demo" in bash


def readme_deck() -> str:
    """The README's deck script (the block that calls ivoryos.run)."""
    return next(b for b in blocks("python") if "ivoryos.run(" in b)
