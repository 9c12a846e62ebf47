"""The name the framework shares with the official IvoryOS plugin template: ``ivoryos_plugin`` is the
framework's import name, and the template's package *and* distribution name.

Measured with pip 23-26 (docs/packaging.md): installing the template into an environment that has
the framework under its old distribution name ``ivoryos-plugin`` uninstalled the framework
("Successfully uninstalled ivoryos-plugin"), since pip normalises ``ivoryos_plugin`` to the same
name. The framework's distribution is now ``ivoryos-plugin-framework``, so pip keeps it; but both
ship a package ``ivoryos_plugin``. What that does depends on how each is installed, so these checks
look at what really happens instead of at the names:

- the template installed as a wheel into the framework's folder writes its ``__init__.py`` over the
  framework's (an error; the repair reinstalls the framework from where it came from);
- the template found first by ``import ivoryos_plugin`` (another site folder, an editable install
  whose finder comes first, a deck started in its checkout) shadows the framework (an error);
- an editable install of the template that Python never reaches first overwrites and shadows
  nothing (a warning: it still shadows the framework for a deck started in its checkout).
"""
from __future__ import annotations

import importlib.machinery
import json
import os
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple
from urllib.parse import unquote, urlsplit

from ...core.versions import normalize
from ...hosts.decks import template_package, template_problem
from .project import FRAMEWORK_DIST, TEMPLATE_DIST
from .report import ERROR, WARNING

PACKAGE = "ivoryos_plugin"
#: the running framework's package folder
FRAMEWORK = Path(__file__).resolve().parents[2]


def _pip() -> str:
    """``python -m pip`` of this interpreter's environment (the one the problem is in)."""
    return f"{shlex.quote(sys.executable)} -m pip"


def _migrate(project: Path) -> str:
    return (f"ivoryos-plugin migrate {shlex.quote(str(project))} --name my_plugin --dir "
            f"{shlex.quote(str(project.parent))} (a copy under its own name and distribution; the folder stays as it is)")


def _framework_dist() -> Optional[metadata.Distribution]:
    try:
        return metadata.distribution(FRAMEWORK_DIST)
    except metadata.PackageNotFoundError:
        return None


def _direct_url(dist: metadata.Distribution) -> Optional[Dict[str, Any]]:
    """The distribution's ``direct_url.json`` (PEP 610: where pip installed it from), or None."""
    try:
        found = json.loads(dist.read_text("direct_url.json") or "null")
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _local_path(url: str) -> Optional[Path]:
    parts = urlsplit(url)
    return Path(unquote(parts.path)) if parts.scheme == "file" else None


def reinstall_command() -> str:
    """The command that puts the framework's files back, from where this framework was installed
    (its ``direct_url.json``: a source checkout, a wheel file, a VCS URL), and from a package index
    as the other way when it was not installed from one."""
    dist = _framework_dist()
    version = f"=={dist.version}" if dist is not None and dist.version else ""
    from_index = f"{_pip()} install --force-reinstall --no-deps {FRAMEWORK_DIST}{version}"
    info = _direct_url(dist) if dist is not None else None
    url = str(info.get("url") or "") if info else ""
    if not url:
        return from_index  # installed from a package index: it has it
    vcs = info.get("vcs_info") if info else None
    if isinstance(vcs, dict):
        commit = f"@{vcs['commit_id']}" if vcs.get("commit_id") else ""
        source = shlex.quote(f"{vcs.get('vcs', 'git')}+{url}{commit}")
    else:
        path = _local_path(url)
        source = shlex.quote(str(path) if path is not None else url)
        if path is not None and (info or {}).get("dir_info", {}).get("editable"):
            source = f"-e {source}"
        if path is not None and not path.exists():
            return (f"{_pip()} install --force-reinstall --no-deps {source} (where {FRAMEWORK_DIST} was installed "
                    f"from, no longer there: build it again there, or {from_index} if your package index has it)")
    return (f"{_pip()} install --force-reinstall --no-deps {source} (where {FRAMEWORK_DIST} was installed from; "
            f"or {from_index} if your package index has it)")


# ------------------------------------------------------------------ where `import ivoryos_plugin` goes
def first_found(skip_cwd: bool = True) -> Optional[Path]:
    """The folder of the ``ivoryos_plugin`` package a fresh ``import ivoryos_plugin`` in this
    environment loads: the import system's finders asked in their order, without the current
    directory (a deck's folder is looked at separately); None when there is none.

    :param skip_cwd: leave the current directory (``''``) out of ``sys.path``."""
    here = os.path.realpath(os.getcwd())
    path = [p for p in sys.path if not (skip_cwd and (p == "" or os.path.realpath(p) == here))]
    for finder in sys.meta_path:
        if getattr(finder, "_ivoryos_plugin_shadow", False):
            continue  # the start-up guard asks the others itself
        try:
            if finder is importlib.machinery.PathFinder:
                spec = importlib.machinery.PathFinder.find_spec(PACKAGE, path)
            else:
                find = getattr(finder, "find_spec", None)
                spec = find(PACKAGE, None) if find is not None else None
        except Exception:
            continue
        if spec is not None:
            if spec.origin and spec.origin not in ("namespace", "built-in"):
                return Path(spec.origin).resolve().parent
            locations = list(spec.submodule_search_locations or [])
            return Path(locations[0]).resolve() if locations else None
    return None


def _ships_package(dist: metadata.Distribution) -> bool:
    top = (dist.read_text("top_level.txt") or "").split()
    return PACKAGE in top or any(str(f).replace("\\", "/") == f"{PACKAGE}/__init__.py" for f in (dist.files or []))


def _own_files(dist: metadata.Distribution) -> List[Path]:
    """The files ``dist`` installed into a folder named ``ivoryos_plugin`` (resolved)."""
    found = []
    for file in dist.files or []:
        if str(file).replace("\\", "/").startswith(f"{PACKAGE}/"):
            found.append(Path(str(dist.locate_file(file))).resolve())
    return found


def _framework_files() -> Set[Path]:
    """The framework's installed files (a wheel install); empty for an editable one (its files are
    its source checkout, which no other installation writes into)."""
    dist = _framework_dist()
    return set(_own_files(dist)) if dist is not None else set()


def _label(dist: metadata.Distribution) -> str:
    return f"{dist.metadata['Name']} {dist.version}"


def _problem(dist: metadata.Distribution, first: Optional[Path]) -> Tuple[str, str]:
    """What the distribution ``dist`` (a package ``ivoryos_plugin`` that is not the framework) does
    to the framework, as ``(level, message)``: an error when it replaced or shadows the framework."""
    name = str(dist.metadata["Name"])
    uninstall = f"{_pip()} uninstall -y {shlex.quote(name)}"
    info = _direct_url(dist) or {}
    source = _local_path(str(info.get("url") or ""))
    project = source if source is not None and source.is_dir() else None
    migrate = (f"then {_migrate(project)} and pip install the copy" if project is not None
               else "then ivoryos-plugin migrate <its project folder> --name my_plugin and pip install the copy")
    files = _own_files(dist)
    inside = [f for f in files if FRAMEWORK in f.parents]
    if inside:
        replaced = sorted(str(f.relative_to(FRAMEWORK)) for f in inside
                          if f in _framework_files() and "__pycache__" not in f.parts)
        what = (f"over the framework's files ({', '.join(replaced[:3])}{', ...' if len(replaced) > 3 else ''})" if replaced
                else "among the framework's files (uninstalling it deletes them with its own)")
        return ERROR, (f"the distribution {_label(dist)} installs a package {PACKAGE!r} (the official plugin template's "
                       f"layout) into the framework's folder {FRAMEWORK}, {what}. Fix: {uninstall} && "
                       f"{reinstall_command()}; {migrate}.")
    theirs = {f.parent for f in files if f.name == "__init__.py" and f.parent.name == PACKAGE}
    if project is not None:
        package = template_package(project)
        if package is not None:
            theirs.add(package.resolve())
    where = (f"editable, from {project}" if info.get("dir_info", {}).get("editable") and project is not None
             else f"in {', '.join(sorted(map(str, theirs))) or 'its own folder'}")
    if first is not None and first in theirs:
        return ERROR, (f"the distribution {_label(dist)} ({where}) installs a package {PACKAGE!r} (the official plugin "
                       f"template's name) that Python finds before the framework's ({FRAMEWORK}): it shadows the "
                       f"framework, so 'import {PACKAGE}' gives the template. Fix: {uninstall} (the framework's files "
                       f"are untouched); {migrate}.")
    return WARNING, (f"the distribution {_label(dist)} ({where}) has a package named {PACKAGE!r}, like the framework; it "
                     f"overwrites none of the framework's files and 'import {PACKAGE}' still finds the framework here, "
                     f"but a deck started in its folder imports the template instead, and it cannot be served next to "
                     f"the framework. Fix: {migrate}; then {uninstall}.")


def installed_problems() -> List[Tuple[str, str]]:
    """``(level, message)`` for each installed distribution, other than the framework, that has a
    package ``ivoryos_plugin`` (an error only when it really replaced or shadows the framework's
    files), and for an ``ivoryos_plugin`` package imported here that is not the framework's."""
    problems: List[Tuple[str, str]] = []
    seen = set()
    first = first_found()
    for dist in metadata.distributions():
        key = normalize(str(dist.metadata["Name"] or ""))
        if key in seen or key == normalize(FRAMEWORK_DIST):
            continue
        seen.add(key)
        if _ships_package(dist):
            problems.append(_problem(dist, first))
    problem = framework_problem()
    if problem:
        problems.append((ERROR, problem))
    return problems


def _owner(file: Path) -> Optional[metadata.Distribution]:
    """The installed distribution (not the framework) whose files or editable source hold ``file``."""
    for dist in metadata.distributions():
        if normalize(str(dist.metadata["Name"] or "")) == normalize(FRAMEWORK_DIST) or not _ships_package(dist):
            continue
        source = _local_path(str((_direct_url(dist) or {}).get("url") or ""))
        if file in _own_files(dist) or (source is not None and source.resolve() in file.parents):
            return dist
    return None


def framework_problem() -> Optional[str]:
    """Why the imported ``ivoryos_plugin`` is not the framework's package, or None."""
    package = sys.modules.get(PACKAGE)
    if package is None:
        return None
    file = getattr(package, "__file__", None)
    if file is None:
        return (f"{PACKAGE}/__init__.py is missing from {FRAMEWORK} (uninstalling a plugin package named {PACKAGE!r} "
                f"removed it), so 'import {PACKAGE}' gives no framework. Fix: {reinstall_command()}")
    if "_EXPORTS" in vars(package):
        return None
    loaded = Path(file).resolve()
    owner = _owner(loaded)
    if loaded.parent == FRAMEWORK:
        uninstall = f"{_pip()} uninstall -y {shlex.quote(str(owner.metadata['Name']))} && " if owner else ""
        return (f"'import {PACKAGE}' loads {loaded}, which is not the framework's: a plugin package named {PACKAGE!r} "
                f"replaced its __init__.py{f' (the distribution {_label(owner)})' if owner else ''}. Fix: {uninstall}"
                f"{reinstall_command()}, then ivoryos-plugin migrate <the plugin's folder> --name my_plugin.")
    project = loaded.parent.parent
    if owner is not None:
        return (f"'import {PACKAGE}' loads {loaded}, which is not the framework's: the distribution {_label(owner)} "
                f"shadows the framework ({FRAMEWORK}). Fix: {_pip()} uninstall -y "
                f"{shlex.quote(str(owner.metadata['Name']))}; then {_migrate(project)}.")
    return (f"'import {PACKAGE}' loads {loaded}, which is not the framework's: the package in {loaded.parent} (the "
            f"official plugin template's name) shadows the framework ({FRAMEWORK}) from {project}, which comes "
            f"first on sys.path (started from that folder). Fix: run from another folder, or {_migrate(project)}.")


# ------------------------------------------------------------------ projects, and the dev host's targets
def project_problems(root: Path, distribution: str) -> List[str]:
    """A plugin project that would collide with the framework: a package folder ``ivoryos_plugin``
    (not the framework's own) or the distribution name ``ivoryos_plugin`` / ``ivoryos-plugin``.

    :param root: the project folder.
    :param distribution: its distribution name ('' when unknown)."""
    fix = f"Fix: {_migrate(root.resolve())}."
    problems = []
    for base in (root, root / "src"):
        folder = base / PACKAGE
        if (folder / "__init__.py").is_file() and not (folder / "core" / "plugin.py").is_file():
            problems.append(f"the package {folder} is named {PACKAGE!r}, the framework's import name (the official "
                            "plugin template's default): installed, it replaces or shadows the framework's; on "
                            f"sys.path (a deck started in this folder), it shadows the framework. {fix}")
    if distribution and normalize(distribution) == TEMPLATE_DIST:
        problems.append(f"the distribution name {distribution!r} is the official plugin template's (pip reads it as "
                        f"{TEMPLATE_DIST!r}); each plugin needs its own, or pip replaces one with the other. {fix}")
    return problems


def _template_project(target: str) -> Optional[Path]:
    """The template checkout a dev host TARGET points into, or None: a folder target that is the
    template's project or package folder, or a module target under ``ivoryos_plugin`` that the
    framework does not have while the current folder holds the template's package."""
    module, _, _ = target.partition(":")
    folder = Path(module)
    if module and folder.is_dir() and ("/" in module or "\\" in module or module.startswith(".") or folder.name == PACKAGE):
        folder = folder.resolve()
        if folder.name == PACKAGE and template_package(folder.parent) == folder:
            return folder.parent
        return folder if template_package(folder) is not None else None
    if module.split(".")[0] != PACKAGE or template_package(Path.cwd()) is None:
        return None
    rest = module.split(".")[1:]
    if rest and ((FRAMEWORK / f"{rest[0]}.py").is_file() or (FRAMEWORK / rest[0]).is_dir()):
        return None  # one of the framework's own modules
    return Path.cwd().resolve()


def command_problem(targets: Sequence[str], deck: Optional[str]) -> Optional[str]:
    """Why ``ivoryos-plugin run TARGETS --deck DECK`` cannot work in a checkout of the official
    plugin template (its package is named like the framework), naming the folder and a fix that
    leaves the framework alone; None otherwise.

    :param targets: the command's targets.
    :param deck: its ``--deck``, or None."""
    for target in targets:
        project = _template_project(target)
        if project is not None:
            package = template_package(project)
            return (f"TARGET {target!r} is the package in {package} (the official plugin template's), named like "
                    f"the framework ivoryos_plugin ({FRAMEWORK}) that serves it: the two cannot be imported in one "
                    f"process, and pip install -e {shlex.quote(str(project))} would shadow the framework. Fix: "
                    f"{_migrate(project)}, then ivoryos-plugin run {shlex.quote(str(project.parent / 'my_plugin'))}"
                    f"{' --deck ' + shlex.quote(deck) if deck else ''} (the deck importing my_plugin).")
    return template_problem(Path(deck)) if deck else None

