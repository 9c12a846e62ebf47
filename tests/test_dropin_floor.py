"""The oldest IvoryOS the framework supports (requirements.txt: ``ivoryos>=1.6.4``), proven: the host,
busy-guard, discovery and demo tests run again against the newest 1.6.x release from PyPI, in a
virtualenv layered over the test one (it sees the test one's packages; its own IvoryOS comes first).

The virtualenv is kept in ``.cache/ivoryos-floor/`` (ignored by git) and made again when it no
longer works; ``IVORYOS_FLOOR`` picks another requirement (e.g. ``ivoryos==1.6.4``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from installing import child_venv, pip, pip_args
from support import ROOT

REQUIREMENT = os.environ.get("IVORYOS_FLOOR", "ivoryos>=1.6,<1.7")  # the newest 1.6.x
CACHE = ROOT / ".cache" / "ivoryos-floor"
TESTS = ["tests/test_hosts.py", "tests/test_busy.py", "tests/test_discovery.py", "tests/test_demo.py"]


def ivoryos_version(python: Path) -> str:
    """The IvoryOS version ``python`` imports ('' when it cannot)."""
    code = "import importlib.metadata as m, ivoryos_plugin, ivoryos; print(m.version('ivoryos'))"
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, cwd=CACHE.parent)
    return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture(scope="module")
def floor() -> Path:
    """The layered virtualenv with IvoryOS ``REQUIREMENT`` and this framework (editable) in it."""
    folder = CACHE / REQUIREMENT.replace(" ", "").replace("<", "lt").replace(">", "gt").replace("=", "eq").replace(",", "_")
    python = folder / "bin" / "python"
    marker = folder / "made-for"
    made_for = f"{REQUIREMENT} over {sys.prefix}"
    if python.exists() and marker.exists() and marker.read_text() == made_for and ivoryos_version(python):
        return python
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    python = child_venv(folder)
    pip(str(python), ["install", REQUIREMENT])  # from PyPI; what the test one already has is not fetched again
    pip(str(python), ["install", *pip_args(), "-e", str(ROOT)])  # the console script, in this virtualenv
    marker.write_text(made_for)
    return python


@pytest.mark.server
def test_the_host_busy_discovery_and_demo_tests_pass_on_the_floor_release(floor: Path, tmp_path: Path) -> None:
    version = ivoryos_version(floor)
    assert version.startswith("1.6.") or "IVORYOS_FLOOR" in os.environ, version
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "IVORYOS_ACTIVE"))}
    proc = subprocess.run([str(floor), "-m", "pytest", *TESTS, "-x", "-q", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "inner")], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1200, stdin=subprocess.DEVNULL)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0 and " passed" in summary and "failed" not in summary, (
        f"on IvoryOS {version}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
