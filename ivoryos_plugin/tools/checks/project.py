"""What ``ivoryos-plugin check`` reads of a project without running it: its metadata
(pyproject.toml, setup.cfg, setup.py read as a syntax tree) as a :class:`Project`, and the
packaging mistakes about one of its plugins (:func:`project_problems`: a wrong or missing dependency
on the framework, templates a wheel would leave out)."""
from __future__ import annotations

import ast
import configparser
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from flask import Blueprint

from ...core.names import ENTRY_POINT_GROUP as GROUP
from ...core.versions import normalize
from .report import ERROR, WARNING
from .sources import _parse


#: the framework's distribution, and the name it must not have: the official plugin template's
#: distribution (``ivoryos_plugin``, which pip normalises to ``ivoryos-plugin``)
FRAMEWORK_DIST, TEMPLATE_DIST = "ivoryos-plugin-framework", "ivoryos-plugin"
_DIST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
PEP440 = re.compile(r"^\s*v?(\d+!)?\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9.]+)?\s*$", re.I)


@dataclass
class Project:
    """A plugin project as read from its files.

    :param root: the folder imports are made from.
    :param kind: ``project`` (pyproject/setup.cfg/setup.py), or ``module`` (a bare module or package).
    :param module: for ``module``: the module to import and search for Blueprints."""

    root: Path
    kind: str
    module: str = ""
    name: str = ""
    entry_points: List[Tuple[str, str]] = field(default_factory=list)
    requirements: Optional[List[str]] = None
    package_data: Dict[str, List[str]] = field(default_factory=dict)
    setuptools: bool = True
    manifest: str = ""
    problems: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def metadata_ok(self) -> bool:
        """Whether the metadata had no error (for the ``ok`` line)."""
        return self.kind == "project" and not any(level == ERROR for level, _ in self.problems)


def load_toml(text: str) -> Dict[str, Any]:
    """The table a TOML document holds: the one place the framework reads TOML (``check`` reads a
    project's pyproject.toml with it, ``migrate`` reads the original one and the one it writes back).
    The standard library's ``tomllib`` (Python 3.11+), else ``tomli``.

    :param text: the document.
    :returns: its top-level table.
    :raises ValueError: the text is not valid TOML (``tomllib.TOMLDecodeError`` is a ``ValueError``).

    Example::

        load_toml('[project]\nname = "balance"\n')["project"]["name"]  # 'balance'"""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    try:  # pragma: no cover - Python < 3.11
        import tomli  # type: ignore[import-not-found]

        return dict(tomli.loads(text))
    except ImportError:  # pragma: no cover
        from setuptools.extern import tomli as vendored  # type: ignore

        return dict(vendored.loads(text))


def read_project(path: Path) -> Project:
    """Read the project at ``path`` (a folder with pyproject.toml, setup.cfg or setup.py; a package
    folder; or a module file) and note metadata problems with their fixes.

    :param path: the folder or file."""
    if path.is_file():
        return Project(root=path.parent, kind="module", module=path.stem)
    if (path / "pyproject.toml").is_file():
        project = Project(root=path, kind="project")
        _read_pyproject(project, path / "pyproject.toml")
        if not project.entry_points and (path / "setup.py").is_file():
            _read_setup_py(project, path / "setup.py")
    elif (path / "setup.cfg").is_file() or (path / "setup.py").is_file():
        project = Project(root=path, kind="project")
        if (path / "setup.cfg").is_file():
            _read_setup_cfg(project, path / "setup.cfg")
        if (path / "setup.py").is_file():
            _read_setup_py(project, path / "setup.py")
    elif (path / "__init__.py").is_file():
        return Project(root=path.parent, kind="module", module=path.name)
    else:
        project = Project(root=path, kind="project")
        project.problems.append((ERROR, f"{path} has no pyproject.toml, setup.cfg or setup.py; create the package "
                                        "with: ivoryos-plugin new NAME (or give the plugin's module file)."))
        return project
    if (path / "MANIFEST.in").is_file():
        project.manifest = (path / "MANIFEST.in").read_text(encoding="utf-8", errors="replace")
    return project


def _read_pyproject(project: Project, file: Path) -> None:
    try:
        data = load_toml(file.read_text(encoding="utf-8"))
    except Exception as exc:
        project.problems.append((ERROR, f"pyproject.toml is not valid TOML ({exc}); fix the syntax."))
        return
    backend = str(data.get("build-system", {}).get("build-backend", "setuptools.build_meta"))
    project.setuptools = "setuptools" in backend
    tool = data.get("tool", {}).get("setuptools", {})
    project.package_data = {str(k): list(v) for k, v in (tool.get("package-data") or {}).items()}
    meta = data.get("project")
    if not isinstance(meta, dict):
        project.problems.append((ERROR, "pyproject.toml has no [project] table; add one with name, version and "
                                        "dependencies = [\"ivoryos-plugin-framework\"] (PEP 621)."))
        return
    _check_core(project, meta.get("name"), meta.get("version"), "version" in (meta.get("dynamic") or []))
    deps = meta.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        project.problems.append((ERROR, "[project] dependencies must be a list of strings, e.g. "
                                        "[\"ivoryos-plugin-framework\"]."))
    else:
        project.requirements = list(deps)
    readme = meta.get("readme")
    readme_file = readme if isinstance(readme, str) else (readme or {}).get("file") if isinstance(readme, dict) else None
    if isinstance(readme_file, str) and not (project.root / readme_file).is_file():
        project.problems.append((ERROR, f"[project] readme = {readme_file!r} does not exist, so pip install "
                                        f"fails; create {readme_file} or remove the readme line."))
    group = (meta.get("entry-points") or {}).get(GROUP) or {}
    if not isinstance(group, dict):
        project.problems.append((ERROR, f"[project.entry-points.\"{GROUP}\"] must be a table of name = "
                                        "\"module:attribute\"."))
        return
    project.entry_points = [(str(k), str(v)) for k, v in group.items()]


def _check_core(project: Project, name: Any, version: Any, dynamic_version: bool) -> None:
    if not isinstance(name, str) or not _DIST_NAME.match(name):
        project.problems.append((ERROR, f"the distribution name {name!r} is missing or invalid; use letters, digits, "
                                        "'-', '_' and '.', e.g. name = \"ivoryos-balance-plugin\"."))
    else:
        project.name = name
    if not dynamic_version and not (isinstance(version, str) and PEP440.match(version)):
        project.problems.append((ERROR, f"the version {version!r} is missing or not a valid (PEP 440) version; "
                                        "use e.g. version = \"0.1.0\"."))


def _read_setup_cfg(project: Project, file: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(file, encoding="utf-8")
    except configparser.Error as exc:
        project.problems.append((ERROR, f"setup.cfg cannot be read ({exc}); fix its syntax."))
        return
    if parser.has_section("metadata"):
        _check_core(project, parser.get("metadata", "name", fallback=None),
                    parser.get("metadata", "version", fallback=None), False)
    if parser.has_option("options", "install_requires"):
        project.requirements = [r.strip() for r in parser.get("options", "install_requires").splitlines() if r.strip()]
    if parser.has_option("options.entry_points", GROUP):
        for line in parser.get("options.entry_points", GROUP).splitlines():
            if "=" in line:
                key, _, value = line.partition("=")
                project.entry_points.append((key.strip(), value.strip()))


def _read_setup_py(project: Project, file: Path) -> None:
    """Read the literal arguments of ``setup(...)`` without running setup.py."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except SyntaxError as exc:
        project.problems.append((ERROR, f"setup.py has a syntax error at line {exc.lineno}: {exc.msg}; fix it."))
        return
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", getattr(n.func, "attr", "")) == "setup"]
    if not calls:
        return
    args: Dict[str, Any] = {}
    for keyword in calls[0].keywords:
        try:
            args[str(keyword.arg)] = ast.literal_eval(keyword.value)
        except ValueError:
            args[str(keyword.arg)] = None  # computed: cannot be read statically
    if not project.name and ("name" in args or "version" in args):
        if args.get("name") is not None and (args.get("version") is None and "version" in args):
            project.name = str(args["name"])  # a computed version cannot be checked statically
        else:
            _check_core(project, args.get("name"), args.get("version"), False)
    if isinstance(args.get("install_requires"), list) and project.requirements is None:
        project.requirements = [str(r) for r in args["install_requires"]]
    if isinstance(args.get("package_data"), dict):
        project.package_data.update({str(k): list(v) for k, v in args["package_data"].items()})
    eps = args.get("entry_points")
    if isinstance(eps, dict) and eps.get(GROUP):
        for line in eps[GROUP]:
            key, _, value = str(line).partition("=")
            project.entry_points.append((key.strip(), value.strip()))
    elif "entry_points" not in args:
        project.problems.append((WARNING, "setup.py declares no entry points; add entry_points={"
                                          f"'{GROUP}': ['my_plugin = my_package.plugin:plugin']}} to setup()."))


def project_problems(project: Project, obj: Blueprint, sources: List[Path]) -> List[Tuple[str, str]]:
    """Packaging mistakes about one plugin of a project: an undeclared dependency on ivoryos_plugin,
    templates that a built wheel would leave out.

    :param project: the project.
    :param obj: the plugin.
    :param sources: its Python files."""
    problems: List[Tuple[str, str]] = []
    if project.requirements is not None:
        declared = {normalize(re.split(r"[\s<>=!~;\[(]", r.strip(), maxsplit=1)[0]) for r in project.requirements}
        if TEMPLATE_DIST in declared:
            problems.append((ERROR, f"Plugin {obj.name!r}: it depends on '{TEMPLATE_DIST}', which is the official IvoryOS "
                                    "plugin template's distribution name, not the framework's; depend on "
                                    f"\"{FRAMEWORK_DIST}\" instead."))
        elif FRAMEWORK_DIST not in declared and _imports(sources, "ivoryos_plugin"):
            problems.append((ERROR, f"Plugin {obj.name!r}: it imports ivoryos_plugin but the package does not depend "
                                    f"on it; add \"{FRAMEWORK_DIST}\" to [project] dependencies."))
    folder = Path(obj.root_path) / (obj.template_folder or "templates")
    if project.setuptools and folder.is_dir() and any(folder.iterdir()):
        top = obj.import_name.split(".")[0]
        patterns = project.package_data.get(top, []) + project.package_data.get("*", [])
        covered = any("templates" in p or "**" in p or p.endswith((".html", "*")) for p in patterns)
        if not covered and "templates" not in project.manifest:
            problems.append((WARNING, f"Plugin {obj.name!r}: {folder.name}/ is not in the package data, so a wheel "
                                      "(a non-editable pip install) would ship without its templates; add "
                                      f"[tool.setuptools.package-data] {top} = [\"templates/*.html\"]."))
    return problems


def _imports(sources: List[Path], module: str) -> bool:
    for file in sources:
        tree = _parse(file)
        for node in ast.walk(tree) if tree is not None else []:
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == module:
                return True
            if isinstance(node, ast.Import) and any(a.name.split(".")[0] == module for a in node.names):
                return True
    return False
