"""A newcomer's first hour after ``./scripts/install.sh && .venv/bin/ivoryos-plugin demo`` (issue 24):
``ivoryos-plugin new`` with a capitalised name, the generated package's README as printed (the
virtualenv's own commands, where the framework comes from, a deck that runs the plugin inside
IvoryOS with the admin / admin hint), and the README's tutorial inside a real IvoryOS on the
tutorial's deck, driven in Chromium. Real console script, real pip, real IvoryOS subprocesses.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from browsing import chromium, offline_context, screenshot
from installing import install_target
from support import ROOT, Server, ivoryos_login, start_process
from test_realcode3_browser import CONTROLS_JS, SHOTS, Traffic, log_in_to_ivoryos, poll, text_has, wait_live

EXE = Path(sys.executable).with_name("ivoryos-plugin")
README = (ROOT / "README.md").read_text(encoding="utf-8")


def cli(args: List[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def blocks(text: str, lang: str) -> List[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(text: str) -> List[str]:
    return [line.strip() for block in blocks(text, "bash") for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


# ------------------------------------------------------------------ new with a capitalised name
@pytest.mark.parametrize("name, fix", [("Balance", "balance"), ("My-Balance", "my_balance"), ("Json", "json_plugin")],
                         ids=["capitalised", "capitals-and-a-dash", "capitalised-stdlib-name"])
def test_new_refuses_a_capitalised_name_in_one_line_and_the_name_it_suggests_works(
        tmp_path: Path, name: str, fix: str) -> None:
    refused = cli(["new", name], tmp_path)
    output = (refused.stdout + refused.stderr).strip()
    assert refused.returncode == 1, output
    assert len(output.splitlines()) == 1 and f"use {fix!r}" in output and "lower case" in output, output
    assert "Traceback" not in output and list(tmp_path.iterdir()) == [], "nothing is written"

    made = cli(["new", fix], tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    imported = subprocess.run([sys.executable, "-c", f"import {fix}.plugin as m; print(m.plugin.name)"],
                              cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / fix), "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=120)
    assert imported.returncode == 0 and imported.stdout.strip() == fix, imported.stderr


# ------------------------------------------------------------------ the generated README, as printed
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """``ivoryos-plugin new rc3_scale`` (the real console script), pip-installed into a folder that
    the servers get on PYTHONPATH (the test virtualenv is left alone)."""
    root = tmp_path_factory.mktemp("rc3_first_hour")
    made = cli(["new", "rc3_scale"], root)
    assert made.returncode == 0, made.stdout + made.stderr
    package = root / "rc3_scale"
    return {"root": root, "package": package, "site": install_target([package], root / "site")}


def test_the_generated_readme_uses_this_virtualenv_and_says_where_the_framework_comes_from(
        generated: Dict[str, Path]) -> None:
    package = generated["package"]
    readme = (package / "README.md").read_text()
    lines = commands(readme)
    assert lines, readme
    venv_bin = Path(sys.executable).parent
    for line in lines:
        program = Path(line.split()[0])
        where = Path(os.path.normpath(package / program))  # not resolved: the venv's python links elsewhere
        assert where.parent == venv_bin and where.exists(), f"not this virtualenv's command: {line}"
    assert any(re.search(r"/pip install -e '\.\[test\]'$", line) for line in lines), lines
    assert "pypi.org/project/ivoryos-plugin/" not in readme  # another package's page
    links = re.findall(r"https?://[^\s)>]+", readme)
    assert all(link.startswith(("https://pypi.org/project/ivoryos/", "http://127.0.0.1:8000/")) for link in links), links
    assert "`ivoryos-plugin-framework`" in readme and "not on PyPI" in readme
    assert f"pip install -e {ROOT}" in readme, "where the framework is, for another virtualenv"
    assert "admin / admin" in readme
    pyproject = (package / "pyproject.toml").read_text()
    assert re.search(r"# ivoryos-plugin-framework .*not on PyPI.*\n.*\ndependencies = \[\"ivoryos-plugin-framework\"\]",
                     pyproject), pyproject


def test_the_generated_readme_install_command_resolves_with_this_virtualenv(generated: Dict[str, Path]) -> None:
    """Its pip finds every requirement (the framework too) here, with no package index: a dry run."""
    install = next(line for line in commands((generated["package"] / "README.md").read_text())
                   if " install -e " in line)
    proc = subprocess.run(["bash", "-c", install + " --dry-run --no-index --no-build-isolation"],
                          cwd=generated["package"], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Would install rc3-scale" in proc.stdout or "Would install ivoryos-rc3-scale-plugin" in proc.stdout, proc.stdout


def test_commands_are_relative_to_the_package_when_the_virtualenv_is_beside_it() -> None:
    """The tutorial's layout: ``.venv/bin/ivoryos-plugin new balance_log`` in the repository."""
    from ivoryos_plugin.tools.scaffold import _commands

    found = _commands(Path(sys.executable).parents[2] / "balance_log")
    assert found["pip"] == "../.venv/bin/pip" and found["cli"] == "../.venv/bin/ivoryos-plugin", found
    assert found["python"] == f"../.venv/bin/{Path(sys.executable).name}", found


def run_readme_deck(folder: Path, command: str, site: Path) -> Server:
    return start_process(["bash", "-c", command], folder, "ivoryos.log", env={"PYTHONPATH": str(site)}, timeout=120)


def test_the_generated_readme_deck_serves_the_plugin_inside_ivoryos(generated: Dict[str, Path]) -> None:
    """The README's deck script and its command, as printed, in the package's folder: IvoryOS with
    the plugin (found through its entry point) reading the deck's sensor; admin / admin logs in."""
    package = generated["package"]
    readme = (package / "README.md").read_text()
    (deck,) = [b for b in blocks(readme, "python") if "ivoryos_plugin.run(__name__)" in b]
    (package / "deck.py").write_text(deck)
    (run,) = [line for line in commands(readme) if line.endswith(" deck.py") and "ivoryos-plugin" not in line]
    server = run_readme_deck(package, run, generated["site"])
    try:
        admin = ivoryos_login(server.base)
        page = admin.get(f"{server.base}/ivoryos/rc3_scale/")
        assert page.status_code == 200 and "Reading of <code>sensor</code>" in page.text, page.text[:300]
        assert "simulated" not in page.text, "the README's deck has the sensor the page reads"
        reply = admin.post(f"{server.base}/ivoryos/rc3_scale/actions/reset", json={"to": 41})
        assert reply.json() == {"ok": True, "value": 41}
        assert " * ivoryos_plugin: 1 plugin(s): rc3_scale" in server.output(), server.output()
    finally:
        server.stop()


# ------------------------------------------------------------------ the README's tutorial, inside IvoryOS
def tutorial() -> str:
    start = README.index("\n## Tutorial")
    return README[start:README.index("\n## ", start + 4)]


def test_the_tutorial_deck_has_the_instrument_the_generated_page_reads() -> None:
    text = tutorial()
    dev = next(line for line in commands(text) if " run balance_log.plugin:plugin " in line)
    deck = ROOT / re.search(r"--deck (\S+)", dev).group(1)  # type: ignore[union-attr]
    proc = subprocess.run([sys.executable, "-c", "import runpy, sys; g = runpy.run_path(sys.argv[1]); "
                           "s = g['sensor']; print(s.read(), s.reset(to=7), s.read())", str(deck)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["1", "7", "8"], proc.stdout + proc.stderr
    assert "<!-- snippet: examples/tutorial_deck.py -->" in text, "the deck is shown in the tutorial"
    assert f"`.venv/bin/python {deck.relative_to(ROOT)}`" in text and "admin / admin" in text
    assert "<http://127.0.0.1:8000/ivoryos/balance_log/>" in text


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_the_tutorial_page_inside_ivoryos_resets_its_reading_in_chromium(
        browser: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """``.venv/bin/python examples/tutorial_deck.py`` with the tutorial's package installed: log in
    as admin / admin, open the page, press Reset: the deck's sensor counts on from the number typed;
    no request of the tab fails."""
    root = tmp_path_factory.mktemp("rc3_tutorial")
    command = next(line for line in commands(tutorial()) if line.startswith(".venv/bin/ivoryos-plugin new "))
    made = cli(command.split()[1:3], root)  # "new balance_log", into this folder
    assert made.returncode == 0, made.stdout + made.stderr
    site = install_target([root / "balance_log"], root / "site")
    server = start_process([sys.executable, str(ROOT / "examples" / "tutorial_deck.py")], root, "ivoryos.log",
                           env={"PYTHONPATH": str(site)}, timeout=120)
    context = offline_context(browser)
    try:
        page = context.new_page()
        traffic = Traffic(context)
        log_in_to_ivoryos(page, server.base)
        page.goto(f"{server.base}/ivoryos/balance_log/")
        wait_live(page)
        traffic.settle(page)
        assert traffic.failures() == []
        assert "Reading of sensor:" in (page.text_content("body") or ""), "not the deck's sensor"
        assert page.evaluate(CONTROLS_JS) == ["#reset"]
        page.fill("#to", "500")
        with page.expect_request(re.compile(r"/actions/reset$")) as sent:
            page.click("#reset")
        assert sent.value.post_data_json == {"to": 500}
        poll(page, text_has("#message", "Reset to 500"), "the reply")
        poll(page, "Number(document.getElementById('reading').textContent) > 500", "the reading after the reset")
        traffic.settle(page)
        assert traffic.failures() == []
        screenshot(page, "ivoryos-tutorial-page-reset", SHOTS)
    finally:
        context.close()
        server.stop()
    assert " * ivoryos_plugin: 1 plugin(s): balance_log" in server.output(), server.output()
