"""What ``ivoryos-plugin check`` reads without running a server: project metadata (pyproject.toml,
setup.cfg, setup.py read as a syntax tree), the plugin's Python sources and its templates."""
from __future__ import annotations

import ast
import configparser
import functools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from flask import Blueprint

from ..core import hints
from ..core.names import ENTRY_POINT_GROUP as GROUP
from ..core.versions import normalize

ERROR, WARNING = "ERROR", "WARNING"
#: the framework's distribution, and the name it must not have: the official plugin template's
#: distribution (``ivoryos_plugin``, which pip normalises to ``ivoryos-plugin``)
FRAMEWORK_DIST, TEMPLATE_DIST = "ivoryos-plugin-framework", "ivoryos-plugin"
TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".xml", ".txt")
_SKIP_DIRS = {"tests", "test", "build", "dist", "__pycache__", ".git", ".venv", "venv", "node_modules"}
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


def _load_toml(text: str) -> Dict[str, Any]:
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
        data = _load_toml(file.read_text(encoding="utf-8"))
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


# ------------------------------------------------------------------ sources
def module_sources(obj: Blueprint) -> List[Path]:
    """The Python files of the plugin: its module, or its whole package (tests excluded).

    :param obj: the plugin Blueprint."""
    module = sys.modules.get(obj.import_name)
    file = getattr(module, "__file__", None)
    if not file:
        return []
    path = Path(file)
    folder = path.parent
    if not (folder / "__init__.py").is_file():
        return [path]
    while (folder.parent / "__init__.py").is_file():
        folder = folder.parent
    found: List[Path] = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        found.extend(Path(base) / f for f in files if f.endswith(".py"))
    return sorted(found)


def _parse(file: Path) -> Optional[ast.AST]:
    try:
        return ast.parse(file.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return None


@functools.lru_cache(maxsize=1)
def host_templates() -> Set[str]:
    """Template names IvoryOS (its app and its blueprints) and the framework provide."""
    import importlib.util

    found: Set[str] = set()
    roots = [Path(__file__).resolve().parents[1] / "templates"]
    spec = importlib.util.find_spec("ivoryos")
    for location in (spec.submodule_search_locations or []) if spec else []:
        roots.extend(p for p in Path(location).rglob("templates") if p.is_dir())
    for root in roots:
        found.update(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return found


def template_problems(obj: Blueprint, sources: List[Path], hosts: Set[str]) -> List[str]:
    """Templates the plugin renders (``render``/``render_template`` with a literal name), extends or
    includes that exist neither in its template folder nor in IvoryOS or the framework.

    :param obj: the plugin Blueprint.
    :param sources: its Python files.
    :param hosts: the host's template names."""
    import jinja2
    from jinja2 import meta

    loader = obj.jinja_loader
    own = set(loader.list_templates()) if loader is not None else set()
    folder = Path(obj.root_path) / (obj.template_folder or "templates")
    problems = []
    for file in sources:
        tree = _parse(file)
        for node in ast.walk(tree) if tree is not None else []:
            name = _rendered_name(node)
            if name is not None and name not in own and name not in hosts:
                where = f"{file.name}:{getattr(node, 'lineno', '?')}"
                problems.append(hints.missing_template(obj.name, name, folder, own, where))
    env = jinja2.Environment()
    for name in sorted(own):
        try:
            source = loader.get_source(env, name)[0] if loader is not None else ""
            referenced = meta.find_referenced_templates(env.parse(source))
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"Plugin {obj.name!r}: template {name}:{exc.lineno}: syntax error: {exc.message}; "
                            "fix the template.")
            continue
        except UnicodeDecodeError:
            continue
        for ref in referenced:
            if ref is not None and ref not in own and ref not in hosts:
                problems.append(hints.missing_base(obj.name, name, ref))
    return problems


def _rendered_name(node: ast.AST) -> Optional[str]:
    if not isinstance(node, ast.Call) or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if called == "render_template" or (called == "render" and first.value.endswith(TEMPLATE_SUFFIXES)):
        return first.value
    return None


def socketio_problems(obj: Blueprint, sources: List[Path], is_plugin: bool) -> Tuple[List[str], List[str]]:
    """Socket.IO handlers on the default namespace (found by running ``init_socketio`` against a
    scratch server, and in the sources), which would replace IvoryOS's own; ``(errors, warnings)``.

    :param obj: the plugin Blueprint.
    :param sources: its Python files.
    :param is_plugin: whether it is an ivoryos_plugin ``Plugin`` (its handlers are namespaced)."""
    from flask_socketio import SocketIO

    from ..core.plugin import Plugin
    from ..runtime.libraries import FLASK_SOCKETIO_VERIFIED, pending_socketio_handlers

    errors: List[str] = []
    warnings: List[str] = []
    events: Set[str] = set()
    fix = (f"pass namespace='/ivoryos/{obj.name}' (and connect the page's socket to it), or port the plugin to "
           "ivoryos_plugin.Plugin and use @plugin.on(...)")
    init = getattr(obj, "init_socketio", None)
    if init is not None and not is_plugin:
        probe = SocketIO()
        try:
            init(probe)
        except Exception as exc:
            warnings.append(f"Plugin {obj.name!r}: init_socketio raised {type(exc).__name__}: {exc} on a scratch "
                            "server, so its handlers were only checked in the source.")
        declared = pending_socketio_handlers(probe)
        if declared is None:
            warnings.append(f"Plugin {obj.name!r}: this Flask-SocketIO keeps its handlers where the check cannot read "
                            f"them (verified on {FLASK_SOCKETIO_VERIFIED}), so they were only checked in the source.")
        for declared_event, namespace in declared[0] if declared else []:
            if namespace in (None, "/") and declared_event not in events:
                events.add(declared_event)
                errors.append(f"Plugin {obj.name!r}: init_socketio handles {declared_event!r} on the default namespace '/', "
                              f"where IvoryOS has its own handlers (a 'connect' there replaces IvoryOS's); {fix}.")
        for namespace in declared[1] if declared else []:
            if namespace in (None, "/"):
                errors.append(f"Plugin {obj.name!r}: init_socketio adds a class-based namespace on '/', which replaces "
                              f"IvoryOS's handlers; {fix}.")
    module = sys.modules.get(obj.import_name)
    globals_ = vars(module) if module is not None else {}
    loaded = _loaded_modules(sources)
    defines_init = False
    for file in sources:
        tree = _parse(file)
        # a receiver is looked up in the module of the file it is in (a package may hold several plugins)
        names = dict(loaded.get(os.path.realpath(file), globals_))
        names.update({name: Plugin for name in _plugins_made(tree)})
        for node in ast.walk(tree) if tree is not None else []:
            if isinstance(node, ast.FunctionDef) and node.name == "init_socketio" and file.stem == obj.import_name.rpartition(".")[2]:
                defines_init = True
            event = _default_namespace_handler(node, names, Plugin)
            if event is not None and event not in events:
                events.add(event)
                errors.append(f"Plugin {obj.name!r}: {file.name}:{getattr(node, 'lineno', '?')} handles Socket.IO "
                              f"event {event!r} on the default namespace '/', where IvoryOS has its own handlers; "
                              f"{fix}.")
    if defines_init and init is None and not is_plugin:
        warnings.append(f"Plugin {obj.name!r}: the module defines init_socketio() but the blueprint has no "
                        "init_socketio attribute, so IvoryOS never calls it; add "
                        f"`{_global_name(globals_, obj) or 'bp'}.init_socketio = init_socketio`.")
    return errors, warnings


def _plugins_made(tree: Optional[ast.AST]) -> Set[str]:
    """The module-level names a file binds to ``Plugin(...)`` (a module of the package that was not
    imported for this check: another plugin of the same package)."""
    body = tree.body if isinstance(tree, ast.Module) else []
    return {t.id for n in body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
            and getattr(n.value.func, "id", getattr(n.value.func, "attr", "")) == "Plugin"
            for t in n.targets if isinstance(t, ast.Name)}


def _loaded_modules(sources: List[Path]) -> Dict[str, Dict[str, Any]]:
    """The globals of the imported modules among ``sources``, by real file path."""
    wanted = {os.path.realpath(f) for f in sources}
    found: Dict[str, Dict[str, Any]] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and os.path.realpath(file) in wanted:
            found[os.path.realpath(file)] = vars(module)
    return found


def _global_name(globals_: Dict[str, Any], obj: Any) -> Optional[str]:
    return next((k for k, v in globals_.items() if v is obj), None)


def _default_namespace_handler(node: ast.AST, globals_: Dict[str, Any], plugin_type: type) -> Optional[str]:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    if node.func.attr not in ("on", "on_event") or not node.args:
        return None
    first = node.args[0]
    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
        return None
    receiver = node.func.value
    if isinstance(receiver, ast.Name) and (isinstance(globals_.get(receiver.id), plugin_type)
                                           or globals_.get(receiver.id) is plugin_type):
        return None
    for keyword in node.keywords:
        if keyword.arg == "namespace":
            value = keyword.value
            if not (isinstance(value, ast.Constant) and value.value in ("/", None)):
                return None
    if len(node.args) >= 3 or (node.func.attr == "on" and len(node.args) >= 2):
        return None  # a namespace given positionally
    return first.value


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
