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
    test_command = "./scripts/install.sh --test && .venv/bin/python -m pytest -n 4 --dist loadfile"
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


# ------------------------------------------------------------------ the API is documented (Datasette's model)
def documentation() -> str:
    return README + "".join(doc.read_text(encoding="utf-8") for doc in sorted((ROOT / "docs").glob("*.md")))


def public_plugin_members() -> list:
    from flask import Blueprint

    from ivoryos_plugin import Plugin

    own = [klass for klass in Plugin.__mro__ if klass not in Blueprint.__mro__]  # its parts by concern too
    return sorted({name for klass in own for name in vars(klass)
                   if not name.startswith("_") and not hasattr(Blueprint, name)})


def cli_commands() -> list:
    import click

    from ivoryos_plugin.tools.cli import main

    found = []
    for name, command in main.commands.items():
        found.append(name)
        if isinstance(command, click.Group):
            found += [f"{name} {sub}" for sub in command.commands]
    return sorted(found)


def test_every_public_name_is_documented() -> None:
    import ivoryos_plugin

    text = documentation()
    missing = [name for name in ivoryos_plugin.__all__ if not re.search(rf"`(ivoryos_plugin\.)?{name}\b", text)]
    assert not missing, f"not in docs/ or the README (as `name`): {missing}"


def test_every_public_plugin_member_is_documented() -> None:
    text = documentation()
    members = public_plugin_members()
    assert {"action", "stream", "publish", "settings", "instrument", "observe", "worker"} <= set(members)
    missing = [name for name in members if not re.search(rf"\bplugin\.{name}\b", text)]
    assert not missing, f"Plugin members no doc mentions as plugin.<name>: {missing}"


def test_every_cli_command_is_documented() -> None:
    text = documentation()
    commands = cli_commands()
    assert {"new", "run", "demo", "check", "list", "token create"} <= set(commands)
    missing = [name for name in commands if f"ivoryos-plugin {name}" not in text]
    assert not missing, f"CLI commands no doc shows as 'ivoryos-plugin <command>': {missing}"


def test_every_module_of_the_package_is_in_the_architecture_doc() -> None:
    """docs/architecture.md's module table names every module (the scaffold's file templates aside),
    so a module added without a word there fails here."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "ivoryos_plugin"
    modules = [p.relative_to(package).as_posix() for p in sorted(package.rglob("*.py"))
               if not {"files", "vendor", "__pycache__"} & set(p.relative_to(package).parts)]
    missing = [m for m in modules if f"`{m}`" not in doc]
    assert modules and not missing, f"docs/architecture.md does not name: {missing}"
