"""Installing plugin packages for tests with real pip, without touching the test virtualenv:
``--target`` folders (put on PYTHONPATH) or a child virtualenv layered over the test one."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import List, Sequence

import pytest


def offline_build_ok() -> bool:
    """Whether setuptools can build wheels here without downloading anything (needs ``wheel``
    before setuptools 70.1, which builds them itself)."""
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return importlib.util.find_spec("wheel") is not None or (major, minor) >= (70, 1)


def pip_args() -> List[str]:
    """pip's options for installing local test packages: no dependencies, offline when possible."""
    if offline_build_ok():
        return ["--no-deps", "--no-build-isolation", "--no-index"]
    return ["--no-deps"]  # build isolation fetches setuptools from the package index


def pip(python: str, args: Sequence[str], timeout: float = 300) -> None:
    """Run ``python -m pip`` and fail the test with pip's output when it fails.

    :param python: the interpreter whose pip (and environment) to use.
    :param args: pip's arguments."""
    proc = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"pip {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def copy_projects(sources: Sequence[Path], into: Path) -> List[Path]:
    """Copy project folders (building leaves build/ and *.egg-info behind in the source).

    :param sources: the project folders.
    :param into: where to put the copies."""
    copies = []
    for source in sources:
        copy = into / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        copies.append(copy)
    return copies


def install_target(projects: Sequence[Path], target: Path) -> Path:
    """``pip install --target``: the packages land in ``target`` with their dist-info (entry points),
    visible only to processes that put ``target`` on PYTHONPATH.

    :param projects: project folders (copied first).
    :param target: the folder to install into."""
    copies = copy_projects(projects, target.parent / f"{target.name}-src")
    pip(sys.executable, ["install", *pip_args(), "--target", str(target), *map(str, copies)])
    return target


def child_venv(folder: Path) -> Path:
    """A virtualenv in ``folder`` that also sees every package of the test virtualenv (through a
    .pth that adds its site-packages), so ``pip install -e`` there leaves the test one untouched.

    :param folder: where to create it. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(purelib, "_parent_venv.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python
