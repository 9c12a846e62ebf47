"""The package passes ``mypy --strict`` (mypy.ini), and its decorators keep the decorated types."""
from __future__ import annotations

import subprocess
import sys

from support import ROOT


def mypy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_package_is_mypy_strict_clean() -> None:
    result = mypy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def test_decorators_return_the_type_they_decorate() -> None:
    result = mypy(str(ROOT / "tests" / "typing" / "decorators.py"))
    assert result.returncode == 0, result.stdout + result.stderr
