"""``ivoryos-plugin migrate``: turn a template-style plugin package (any plain-Blueprint package, the
official IvoryOS plugin template included) or a single HTML page into a framework plugin package
under a new name, beside the original (which is never changed).

The official template names its package and its distribution ``ivoryos_plugin``, the framework's
import name: installed as it is, its ``ivoryos_plugin/__init__.py`` replaces the framework's. The
migrated package has its own name, its own distribution (``ivoryos-<name>-plugin``), the
``ivoryos.plugins`` entry point, and generated tests; what could not be converted is listed.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..core.names import ENTRY_POINT_GROUP, required_endpoint
from .checks_source import FRAMEWORK_DIST, TEMPLATE_DIST, _load_toml, read_project
from .migrate_pages import convert_page, page_title
from .migrate_source import convert_plugin_module, find_blueprint, rename_imports
from .scaffold import check_package_name
from ..core.versions import normalize

_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".git", ".venv", "venv")
_PAGES = (".html", ".htm", ".jinja", ".jinja2", ".j2")
_KEEP_AT_ROOT = re.compile(r"^(README|LICEN[CS]E|CHANGELOG|requirements)[\w.-]*$|^MANIFEST\.in$", re.I)


class MigrateError(Exception):
    """The source cannot be migrated; the message says why and what to do."""


@dataclass
class Migration:
    """What ``migrate`` made.

    :param path: the new project folder.
    :param target: the plugin's ``module:attribute``.
    :param changes: what was converted, one line each.
    :param notes: what could not be converted (to do by hand), one line each."""

    path: Path
    target: str
    changes: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        """The report the CLI prints."""
        out = [f"Created {self.path} (plugin {self.target})"] + [f"  changed: {c}" for c in self.changes]
        if self.notes:
            out.append("To do or check by hand:")
            out += [f"  - {n}" for n in self.notes]
        return out + ["Next:", f"  pip install -e {self.path}", f"  pytest {self.path}",
                      f"  ivoryos-plugin check {self.path}"]


def _package_of(source: Path) -> Tuple[Path, Path]:
    """``(project root, package folder)`` of a project folder or a package folder."""
    source = source.resolve()
    if (source / "__init__.py").is_file() and not any((source / f).is_file() for f in ("pyproject.toml", "setup.py")):
        return source.parent, source
    for base in (source / "src", source):
        packages = sorted(p.parent for p in base.glob("*/__init__.py") if p.parent.name not in ("tests", "test", "docs"))
        with_blueprint = [p for p in packages if _plugin_module(p) is not None]
        if with_blueprint:
            return source, with_blueprint[0]
    raise MigrateError(f"{source}: no package there defines a flask.Blueprint at module level; give the folder of the "
                       "plugin's project (with pyproject.toml) or of its package.")


def _plugin_module(package: Path) -> Optional[Path]:
    """The module of ``package`` that defines the Blueprint (``plugin.py`` first)."""
    files = sorted(package.rglob("*.py"), key=lambda f: (f.name != "plugin.py", len(f.parts), str(f)))
    for file in files:
        if "__pycache__" in file.parts:
            continue
        try:
            if find_blueprint(ast.parse(file.read_text(encoding="utf-8"))) is not None:
                return file
        except SyntaxError:
            continue
    return None


def _title(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def _stage(name: str, directory: Path) -> Tuple[Path, Path]:
    check_package_name(name)
    target = Path(directory).resolve() / name
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or pass another --dir.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    os.chmod(staging, 0o755)
    return target, staging


def migrate_project(source: Path, name: str, directory: Path) -> Migration:
    """Write the framework plugin ``directory/name`` converted from the plugin project ``source``.

    :param source: the template-style project (or package) folder; never changed.
    :param name: the new plugin, package and entry point name.
    :param directory: where to create the new project folder.
    :raises MigrateError: no module-level Blueprint in ``source``.
    :raises PluginError: ``name`` is unusable (the message says which name to use).
    :raises FileExistsError: ``directory/name`` exists."""
    root, package = _package_of(Path(source))
    module_file = _plugin_module(package)
    assert module_file is not None
    old = package.name
    target, staging = _stage(name, directory)
    try:
        migration = _convert_project(root, package, module_file, old, name, staging)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    migration.path = target
    return migration


def _convert_project(root: Path, package: Path, module_file: Path, old: str, name: str, out: Path) -> Migration:
    shutil.copytree(package, out / name, ignore=_SKIP)
    module = ".".join((name, *module_file.relative_to(package).with_suffix("").parts))
    var = find_blueprint(ast.parse(module_file.read_text(encoding="utf-8")))[0]  # type: ignore[index]
    migration = Migration(out, f"{module}:{var}")
    placement, renamed = "tab", 0
    for file in sorted((out / name).rglob("*.py")):
        text = file.read_text(encoding="utf-8")
        new = rename_imports(text, old, name) if old != name else text
        renamed += new != text
        if file.relative_to(out / name) == module_file.relative_to(package):
            converted = convert_plugin_module(new, f"{name}/{file.relative_to(out / name).as_posix()}", name,
                                              _title(name), f"{module}:{var}")
            new, placement = converted.text, converted.placement
            migration.notes += converted.notes
            migration.changes.append(f"{name}/{file.relative_to(out / name).as_posix()}: the Blueprint is "
                                     f"Plugin({name!r}); deck reads use plugin.instruments; Socket.IO handlers "
                                     f"{converted.events or 'none'} are in the plugin's namespace")
        file.write_text(new, encoding="utf-8")
    migration.changes.insert(0, f"package {old} -> {name} (imports rewritten in {renamed} file(s))")
    for page in sorted(p for p in (out / name).rglob("*") if p.suffix in _PAGES):
        converted_page = convert_page(page.read_text(encoding="utf-8"), f"{name}/{page.relative_to(out / name).as_posix()}")
        page.write_text(converted_page.text, encoding="utf-8")
        migration.notes += converted_page.notes
        migration.changes.append(f"{name}/{page.relative_to(out / name).as_posix()}: extends plugin_base, io() is the "
                                 "plugin's connection, CDN libraries are local")
    _copy_root_files(root, old, name, out, migration)
    _write_project(out, name, migration.target, placement, _original_metadata(root), migration)
    return migration


def _copy_root_files(root: Path, old: str, name: str, out: Path, migration: Migration) -> None:
    word = re.compile(rf"\b{re.escape(old)}(?=[./]\w)|(?<=import ){re.escape(old)}\b")  # module paths only
    left: List[str] = []
    for item in sorted(root.iterdir()):
        if item.name.startswith(".") or item.name in ("pyproject.toml", "setup.py", "setup.cfg", "src") or (
                item.is_dir() and item.name in (old, "__pycache__", "build", "dist")) or item.suffix == ".egg-info":
            continue
        if item.is_file() and _KEEP_AT_ROOT.match(item.name):
            text = item.read_text(encoding="utf-8", errors="replace")
            (out / item.name).write_text(word.sub(name, text) if old != name else text, encoding="utf-8")
        else:
            left.append(item.name + ("/" if item.is_dir() else ""))
    for extra in ("setup.py", "setup.cfg"):
        if (root / extra).is_file():
            migration.changes.append(f"{extra} left out: the metadata is in pyproject.toml")
    if left:
        migration.notes.append(f"left out of the new project: {', '.join(left)} (copy what you need; imports of "
                               f"{old!r} there must become {name!r})")


def _original_metadata(root: Path) -> Dict[str, Any]:
    file = root / "pyproject.toml"
    if file.is_file():
        try:
            meta = _load_toml(file.read_text(encoding="utf-8")).get("project")
            if isinstance(meta, dict):
                return meta
        except Exception:
            pass
    project = read_project(root)
    return {"version": "0.1.0", "dependencies": list(project.requirements or [])}


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to pyproject.toml")


def _write_project(out: Path, name: str, target: str, placement: str, meta: Dict[str, Any],
                   migration: Migration) -> None:
    dist = f"ivoryos-{name.replace('_', '-')}-plugin"
    dropped = {TEMPLATE_DIST, normalize(str(meta.get("name", ""))), normalize(FRAMEWORK_DIST)}
    deps = [FRAMEWORK_DIST] + [d for d in meta.get("dependencies", []) if isinstance(d, str)
                               and normalize(re.split(r"[\s<>=!~;\[(]", d.strip(), maxsplit=1)[0]) not in dropped]
    project: Dict[str, Any] = {"name": dist, "version": str(meta.get("version") or "0.1.0"),
                               "description": str(meta.get("description") or f"{_title(name)}: an IvoryOS plugin page.")}
    readme = meta.get("readme")
    if isinstance(readme, str) and (out / readme).is_file():
        project["readme"] = readme
    project["requires-python"] = ">=3.9"
    for key in ("authors", "license", "keywords", "classifiers"):
        if key in meta:
            project[key] = meta[key]
    project["dependencies"] = deps
    lines = ["[build-system]", 'requires = ["setuptools>=62.3"]', 'build-backend = "setuptools.build_meta"', "",
             "[project]"] + [f"{k} = {_toml(v)}" for k, v in project.items()]
    lines += ["", "[project.optional-dependencies]", 'test = ["pytest>=8"]']
    if isinstance(meta.get("urls"), dict):
        lines += ["", "[project.urls]"] + [f"{_toml(k)} = {_toml(v)}" for k, v in meta["urls"].items()]
    lines += ["", "# How ivoryos_plugin.run finds the plugin", f'[project.entry-points."{ENTRY_POINT_GROUP}"]',
              f"{name} = {_toml(target)}", "", "[tool.setuptools.packages.find]", f"include = [{_toml(name)}, {_toml(name + '.*')}]",
              "", "# templates and static files must be listed to be in the wheel", "[tool.setuptools.package-data]",
              f'{name} = ["templates/**/*", "static/**/*"]', "", "[tool.pytest.ini_options]", 'testpaths = ["tests"]']
    (out / "pyproject.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    migration.changes.append(f"pyproject.toml: distribution {dist}, depends on {FRAMEWORK_DIST}, entry point "
                             f"{name} = {target}")
    _write_tests(out, name, target, placement, _instrument_names(out / name))
    migration.changes.append(f"tests/test_{name}.py: generated (login, the page, the page inside IvoryOS, check)")


def _instrument_names(package: Path) -> List[str]:
    """The deck instruments the converted code reads by name (``plugin.instrument("balance")``)."""
    found = set()
    for file in package.rglob("*.py"):
        found |= set(re.findall(r"\.instrument\(\s*['\"](\w+)['\"]\s*\)", file.read_text(encoding="utf-8")))
    return sorted(found)


TESTS = '''"""Tests for the {name} plugin, generated by ``ivoryos-plugin migrate``, with the ivoryos_plugin
pytest kit's fixtures: ``client`` (logged in), ``anon_client``, ``deck`` and ``ivoryos_client``
(inside a real in-process IvoryOS)."""
from pathlib import Path

import pytest

PAGE = "/ivoryos/{name}/{rule}"
#: the deck instruments the plugin reads by name
INSTRUMENTS = {instruments!r}


class StandIn:
    """Stands in for a deck instrument here: every method returns 0. Put your driver's simulator on
    the deck instead to test what the page shows."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: 0


@pytest.fixture
def stocked(deck):
    """The kit's deck with a stand-in for each instrument the plugin reads."""
    for name in INSTRUMENTS:
        setattr(deck, name, StandIn())
    return deck


@pytest.mark.parametrize("accept, status", [("text/html", 302), ("application/json", 401)],
                         ids=["browser-redirected-to-login", "program-gets-401"])
def test_page_needs_login(anon_client, accept, status):
    assert anon_client.get(PAGE, headers={{"Accept": accept}}).status_code == status


def test_page_is_served(client, stocked):
    page = client.get(PAGE)
    assert page.status_code == 200, page.get_data(as_text=True)
    assert 'name="csrf-token"' in page.get_data(as_text=True)  # the framework's scripts and CSRF token


def test_page_inside_a_real_ivoryos(ivoryos_client, stocked):
    page = ivoryos_client.get(PAGE)
    assert page.status_code == 200, page.get_data(as_text=True)


def test_the_package_passes_ivoryos_plugin_check():
    from ivoryos_plugin.tools.checks import check_path

    report = check_path(Path(__file__).resolve().parents[1])
    assert not report.errors, "\\n".join(report.lines())
'''

CONFTEST = '''"""The plugin under test, for the ivoryos_plugin pytest kit's fixtures."""
import pytest

from {module} import {var} as migrated_plugin

pytest_plugins = ["ivoryos_plugin.testing"]


@pytest.fixture
def plugin():
    """The plugin the kit's fixtures (client, anon_client, live, ivoryos_client) serve."""
    return migrated_plugin
'''


def _write_tests(out: Path, name: str, target: str, placement: str, instruments: List[str]) -> None:
    module, _, var = target.partition(":")
    rule = "" if required_endpoint(placement) == "main" else "widget"
    (out / "tests").mkdir(exist_ok=True)
    (out / "tests" / "conftest.py").write_text(CONFTEST.format(module=module, var=var), encoding="utf-8")
    (out / "tests" / f"test_{name}.py").write_text(TESTS.format(name=name, rule=rule, instruments=instruments),
                                                   encoding="utf-8")


PLUGIN = '''"""{title}: the page {page} as an IvoryOS plugin (made by ``ivoryos-plugin migrate --from-html``)."""
from ivoryos_plugin import Plugin

plugin = Plugin({name!r}, __name__, title={title!r}{placement})


@plugin.route("{rule}")
def {endpoint}():
    return plugin.render("{name}.html")
'''


def migrate_html(page: Path, name: str, directory: Path, placement: str = "tab") -> Migration:
    """Write the framework plugin ``directory/name`` whose one page is the HTML file ``page``.

    :param page: a standalone HTML page (its CDN libraries become the framework's local copies).
    :param name: the new plugin, package and entry point name.
    :param directory: where to create the new project folder.
    :param placement: ``"tab"`` or ``"left_panel"`` (the page is then the widget).
    :raises PluginError: ``name`` is unusable.
    :raises FileExistsError: ``directory/name`` exists."""
    page = Path(page)
    html = page.read_text(encoding="utf-8")
    title = page_title(html, _title(name))
    target, staging = _stage(name, directory)
    try:
        (staging / name / "templates").mkdir(parents=True)
        (staging / name / "__init__.py").write_text(f'"""{title}: an IvoryOS plugin."""\n', encoding="utf-8")
        endpoint = required_endpoint(placement)
        (staging / name / "plugin.py").write_text(PLUGIN.format(
            title=title, page=page.name, name=name, rule="/" if endpoint == "main" else "/widget", endpoint=endpoint,
            placement=', placement="left_panel"' if placement == "left_panel" else ""), encoding="utf-8")
        converted = convert_page(html, page.name, standalone=True)
        (staging / name / "templates" / f"{name}.html").write_text(converted.text, encoding="utf-8")
        (staging / "README.md").write_text(f"# {title}\n\nThe page `{page.name}` as an IvoryOS plugin, made by "
                                           "`ivoryos-plugin migrate --from-html`.\n", encoding="utf-8")
        migration = Migration(staging, f"{name}.plugin:plugin", notes=converted.notes)
        migration.changes.append(f"{name}/templates/{name}.html: the page, its CDN libraries local, io() the "
                                 "plugin's connection")
        relative = sorted(set(re.findall(r"""(?:src|href)\s*=\s*["'](?![a-z]+:|//|#|\{)([^"']+)["']""", html, re.I)))
        if relative:
            migration.notes.append(f"{page.name} links files next to it ({', '.join(relative)}): copy them into "
                                   f"{name}/static/ and link them with {{{{ url_for('{name}.static', filename='...') }}}}.")
        _write_project(staging, name, migration.target, placement,
                       {"version": "0.1.0", "readme": "README.md", "description": f"{title}: an IvoryOS plugin page."},
                       migration)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    migration.path = target
    return migration
