"""The new project's metadata: the original ``[project]`` table kept where it is safe, the
``pyproject.toml`` written with tomli_w and read back."""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import tomli_w
from packaging.version import InvalidVersion, Version

from ...core.names import ENTRY_POINT_GROUP
from ...core.versions import normalize
from ..checks.project import FRAMEWORK_DIST, TEMPLATE_DIST, load_toml, read_project
from .generated import _write_tests
from .tree import MigrateError, Migration, SourceTree, _inside, _read, _shown, _title


def _original_metadata(root: Path, tree: SourceTree, migration: Migration) -> Dict[str, Any]:
    """The ``[project]`` table of the source (from pyproject.toml, or read from setup.py/setup.cfg);
    metadata files that are links out of the source tree are not read."""
    readable = {name: tree.readable(root / name, name) for name in ("pyproject.toml", "setup.py", "setup.cfg")
                if os.path.lexists(root / name)}
    pyproject = readable.get("pyproject.toml")
    if pyproject is not None:
        try:
            data = load_toml(_read(pyproject[0]).decode("utf-8"))
            if isinstance(data.get("project"), dict):
                return dict(data["project"])
        except Exception:
            pass
    if any(found is None for found in readable.values()):
        migration.notes.append("the project's metadata was not read (see the files not copied): the new "
                               "pyproject.toml has version 0.1.0 and no dependency but the framework; add yours.")
        return {"version": "0.1.0"}
    project = read_project(root)
    return {"version": "0.1.0", "dependencies": list(project.requirements or []),
            "entry-points": {ENTRY_POINT_GROUP: dict(project.entry_points)}}


def _merge(into: Dict[str, Any], table: Dict[str, Any]) -> Dict[str, Any]:
    for key, value in table.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _inside_file(out: Path, relative: object) -> bool:
    """Whether ``relative`` names a regular file inside the new project ``out`` (a readme or a
    license file that setuptools will read into the package's metadata)."""
    if not isinstance(relative, str) or not relative or os.path.isabs(relative):
        return False
    path = os.path.realpath(out / relative)
    return _inside(path, os.path.realpath(out)) and os.path.isfile(path)


def _is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_people(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and set(v) <= {"name", "email"} and
                                           all(isinstance(x, str) for x in v.values()) for v in value)


def _project_table(out: Path, name: str, meta: Dict[str, Any], migration: Migration) -> Dict[str, Any]:
    """The new ``[project]`` table: the source's metadata that is valid and safe to keep."""
    dist = f"ivoryos-{name.replace('_', '-')}-plugin"
    dropped = {TEMPLATE_DIST, normalize(str(meta.get("name", ""))), normalize(FRAMEWORK_DIST)}
    deps = [FRAMEWORK_DIST] + [d for d in meta.get("dependencies", []) if isinstance(d, str)
                               and normalize(re.split(r"[\s<>=!~;\[(]", d.strip(), maxsplit=1)[0]) not in dropped]
    version = str(meta.get("version") or "0.1.0")
    try:
        Version(version)
    except InvalidVersion:
        migration.notes.append(f"pyproject.toml: the version {version!r} is not a valid version (PEP 440); the new "
                               "project has 0.1.0.")
        version = "0.1.0"
    description = " ".join(str(meta.get("description") or f"{_title(name)}: an IvoryOS plugin page.").split())
    project: Dict[str, Any] = {"name": dist, "version": version, "description": description}
    readme = meta.get("readme")
    if isinstance(readme, str) and _inside_file(out, readme):
        project["readme"] = readme
    project["requires-python"] = ">=3.9"
    for key, valid in (("authors", _is_people), ("keywords", _is_strings), ("classifiers", _is_strings)):
        if key in meta and valid(meta[key]):
            project[key] = meta[key]
        elif key in meta:
            migration.notes.append(f"pyproject.toml: {key} was left out: {_shown(repr(meta[key])[:60])} is not what "
                                   f"PEP 621 allows there; add it by hand.")
    license = meta.get("license")
    if isinstance(license, str) or (isinstance(license, dict) and set(license) == {"text"}):
        project["license"] = license
    elif isinstance(license, dict) and set(license) == {"file"} and _inside_file(out, license["file"]):
        project["license"] = license
    elif license is not None:
        migration.notes.append(f"pyproject.toml: license = {license!r} was left out (its file is not in the new "
                               "project); add the license by hand.")
    project["dependencies"] = deps
    project["optional-dependencies"] = {"test": ["pytest>=8"]}
    urls = meta.get("urls")
    if isinstance(urls, dict):
        project["urls"] = {str(k): v for k, v in urls.items() if isinstance(v, str)}
    return project


def _write_project(out: Path, name: str, plugins: Dict[str, str], placements: Dict[str, str], meta: Dict[str, Any],
                   migration: Migration) -> None:
    """Write ``pyproject.toml`` with ``tomli_w`` (every key and value written as TOML, whatever
    quotes, brackets or line breaks it holds), checked by reading it back; then the tests.

    :param plugins: each plugin's name -> ``module:attribute`` (its entry point).
    :param placements: each plugin's placement."""
    project = _project_table(out, name, meta, migration)
    parts: List[Tuple[str, Dict[str, Any]]] = [
        ("", {"build-system": {"requires": ["setuptools>=62.3"], "build-backend": "setuptools.build_meta"}}),
        ("", {"project": project}),
        ("# How ivoryos_plugin.run finds the plugin\n",
         {"project": {"entry-points": {ENTRY_POINT_GROUP: dict(plugins)}}}),
        ("", {"tool": {"setuptools": {"packages": {"find": {"include": [name, name + ".*"]}}}}}),
        ("# templates and static files must be listed to be in the wheel\n",
         {"tool": {"setuptools": {"package-data": {name: ["templates/**/*", "static/**/*"] + [
             f"{folder}/**/*" for folder in _asset_folders(out / name) if "/" in folder]}}}}),
        ("", {"tool": {"pytest": {"ini_options": {"testpaths": ["tests"]}}}}),
    ]
    text = "\n".join(comment + tomli_w.dumps(table) for comment, table in parts)
    whole: Dict[str, Any] = {}
    for _, table in parts:
        _merge(whole, copy.deepcopy(table))
    if load_toml(text) != whole:  # pragma: no cover - the sections are disjoint by construction
        raise MigrateError("the new pyproject.toml does not read back as written; please report this.")
    (out / "pyproject.toml").write_text(text, encoding="utf-8")
    points = ", ".join(f"{n} = {t}" for n, t in plugins.items())
    migration.changes.append(f"pyproject.toml: distribution {project['name']}, depends on {FRAMEWORK_DIST}, entry "
                             f"point{'s' * (len(plugins) > 1)} {points}")
    _write_tests(out, name, plugins, _instrument_names(out / name), migration.files, migration.owners)
    shown = ", ".join(f"{n} ({'left-panel widget' if placements.get(n) == 'left_panel' else 'page'})" for n in plugins)
    migration.changes.append(f"tests/test_{name}.py: generated (login, the page, the page inside IvoryOS, check) "
                             f"for {shown}")


def _asset_folders(package: Path) -> List[str]:
    """The ``templates`` and ``static`` folders of the package, relative to it."""
    return sorted(p.relative_to(package).as_posix() for p in package.rglob("*")
                  if p.is_dir() and p.name in ("templates", "static"))


def _instrument_names(package: Path) -> List[str]:
    """The deck instruments the converted code reads by name (``plugin.instrument("balance")``,
    ``plugin.instruments.get("balance")``, ``"balance" in plugin.instruments``)."""
    found = set()
    patterns = (r"\.instrument\(\s*['\"](\w+)['\"]\s*\)", r"\.instruments\.get\(\s*['\"](\w+)['\"]",
                r"['\"](\w+)['\"]\s+in\s+\w+\.instruments\b")
    for file in package.rglob("*.py"):
        text = file.read_text(encoding="utf-8")
        for pattern in patterns:
            found |= set(re.findall(pattern, text))
    return sorted(found)
