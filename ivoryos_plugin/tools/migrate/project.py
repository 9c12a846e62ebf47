"""``ivoryos-plugin migrate`` of a plugin project: find its plugins, convert their modules and pages,
copy what else belongs to the package, write the new project."""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple


from ...core.names import ENTRY_POINT_GROUP, PluginError, check_name
from .metadata import _original_metadata, _write_project
from .pages import connect_calls, convert_page, raw_page_notes, rename_urls
from .source import (blueprint_argument, convert_plugin_module, find_blueprint, folder_of, rename_endpoints,
                     rename_imports, serves_file)
from .tree import (_KEEP_AT_ROOT, _PAGES, MigrateError, Migration, SourceTree, _copy, _os_error, _package_of,
                   _plugin_module, _read, _shown, _staged, _title)


def migrate_project(source: Path, name: str, directory: Path) -> Migration:
    """Write the framework plugin ``directory/name`` converted from the plugin project ``source``.

    Nothing outside the source tree is read: a link out of it is skipped and named in the report
    (:class:`SourceTree`).

    :param source: the template-style project (or package) folder; never changed.
    :param name: the new plugin, package and entry point name.
    :param directory: where to create the new project folder.
    :raises MigrateError: no module-level Blueprint in ``source``, a module that cannot be parsed, a
        file that cannot be read or written (nothing is left behind).
    :raises PluginError: ``name`` is unusable (the message says which name to use).
    :raises FileExistsError: ``directory/name`` exists."""
    root, package, boundary = _package_of(Path(source))
    module_file = _plugin_module(package, boundary)
    assert module_file is not None
    try:
        with _staged(name, directory) as (target, staging):
            migration = _convert_project(root, package, module_file, name, staging, SourceTree(boundary, root))
            staging.rename(target)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _os_error(exc) from None
    migration.path = target
    return migration


@dataclass
class _Source:
    """One plugin of the source package: the module defining its Blueprint and its names.

    :param module: the module, relative to the package folder.
    :param var: the Blueprint's variable.
    :param old: the Blueprint's name.
    :param name: the new plugin's name."""

    module: Path
    var: str
    old: str
    name: str = ""


def _blueprint_of(file: Path) -> Optional[Tuple[str, str]]:
    """``(variable, Blueprint name)`` of the module-level Blueprint of ``file``, or None."""
    try:
        found = find_blueprint(ast.parse(file.read_text(encoding="utf-8")))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None
    if found is None:
        return None
    named = blueprint_argument(found[1], "name")
    old = named.value if isinstance(named, ast.Constant) and isinstance(named.value, str) else found[0]
    return found[0], old


def _plugin_sources(package: Path, first: Path, old: str, entry_points: Dict[str, str]) -> List[_Source]:
    """The plugins of the (copied) package ``package``: those the source's ``ivoryos.plugins``
    entry points name (``module:attribute``, or the module form ``module``), else every module
    with a module-level Blueprint; ``first`` (``plugin.py`` when there is one) leads.

    :param package: the package folder.
    :param first: the module found first, relative to ``package``.
    :param old: the package's name in the source.
    :param entry_points: the source's entry points, name -> value."""
    modules: List[Path] = []
    for value in entry_points.values():
        parts = value.partition(":")[0].strip().split(".")
        if parts[0] != old:
            continue
        for rel in (Path(*parts[1:]).with_suffix(".py") if parts[1:] else None, Path(*parts[1:], "__init__.py")):
            if rel is not None and (package / rel).is_file() and _blueprint_of(package / rel) and rel not in modules:
                modules.append(rel)
                break
    if not modules:
        modules = sorted((p.relative_to(package) for p in package.rglob("*.py") if _blueprint_of(p)),
                         key=lambda p: (p.name != "plugin.py", len(p.parts), p.as_posix()))
    if first in modules:
        modules.remove(first)
    modules.insert(0, first)
    return [_Source(rel, *_blueprint_of(package / rel)) for rel in modules]  # type: ignore[misc]


def _name_plugins(sources: List[_Source], name: str, migration: Migration) -> None:
    """The first plugin gets ``name``; the others keep their Blueprint's name when it can name a
    plugin (their URLs stay), else ``<name>_<module>``."""
    taken = {name}
    for index, source in enumerate(sources):
        if index == 0:
            source.name = name
            continue
        try:
            usable = check_name(source.old) not in taken
        except PluginError:
            usable = False
        fallback = f"{name}_{source.module.stem}"
        while not usable and fallback in taken:
            fallback += "_"
        source.name = source.old if usable else fallback
        taken.add(source.name)
        why = "its Blueprint's name, so its URLs stay" if usable else f"its Blueprint's name {source.old!r} cannot name a plugin"
        migration.changes.append(f"the Blueprint {source.old!r} ({source.module.as_posix()}) is the plugin "
                                 f"{source.name!r} ({why})")


def _template_folders(package: Path, sources: List[_Source]) -> List[Path]:
    """The template folders of the plugins (``template_folder=``), and every ``templates/`` folder."""
    found = {p for p in package.rglob("templates") if p.is_dir()}
    for source in sources:
        blueprint = find_blueprint(ast.parse((package / source.module).read_text(encoding="utf-8")))
        folder = folder_of(blueprint_argument(blueprint[1], "template_folder")) if blueprint else None
        if folder and (package / source.module).parent.joinpath(folder).is_dir():
            found.add((package / source.module).parent / folder)
    return sorted(found)


def _python(text: str, shown: str) -> str:
    """``text`` if it parses (what migrate writes must import), else a MigrateError."""
    try:
        ast.parse(text)
    except SyntaxError as exc:
        raise MigrateError(f"{shown}: the converted code does not parse ({exc.msg}, line {exc.lineno}); nothing was "
                           "written. Please report this with the original file.") from None
    return text


def _convert_project(root: Path, package: Path, module_file: Path, name: str, out: Path,
                     tree: SourceTree) -> Migration:
    old = package.name
    prefix = package.relative_to(root).as_posix() + "/"
    for rel, real in tree.files(package, prefix):
        if real is None:
            (out / name / rel).mkdir(parents=True, exist_ok=True)
        else:
            (out / name / rel).parent.mkdir(parents=True, exist_ok=True)
            _copy(real, out / name / rel)
    migration = Migration(out, "")
    meta = _original_metadata(root, tree, migration)
    group = (meta.get("entry-points") or {}).get(ENTRY_POINT_GROUP)
    entry_points = {str(k): str(v) for k, v in group.items()} if isinstance(group, dict) else {}
    for file in sorted((out / name).rglob("*.py")):
        try:
            file.write_text(rename_imports(file.read_text(encoding="utf-8"), old, name) if old != name else
                            file.read_text(encoding="utf-8"), encoding="utf-8")
        except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
            raise MigrateError(f"{prefix}{file.relative_to(out / name).as_posix()} cannot be converted: it is not "
                               f"valid UTF-8 Python ({exc}); fix it or remove it, then migrate again. Nothing was "
                               "written.") from None
    sources = _plugin_sources(out / name, module_file.relative_to(package), old, entry_points)
    _name_plugins(sources, name, migration)
    renames = {s.old: s.name for s in sources}
    by_module = {s.module: s for s in sources}
    placements: Dict[str, str] = {}
    owners = migration.owners
    for file in sorted((out / name).rglob("*.py")):
        module = file.relative_to(out / name)
        shown = f"{name}/{module.as_posix()}"
        text = file.read_text(encoding="utf-8")
        source = by_module.get(module)
        if source is None:
            new, renamed = rename_endpoints(text, renames)
            migration.changes += [f"{shown}: {line}" for line in renamed]
        else:
            target = f"{'.'.join((name, *module.with_suffix('').parts))}:{source.var}".replace(".__init__:", ":")
            migration.plugins[source.name] = target
            try:
                converted = convert_plugin_module(text, shown, source.name, _title(source.name), target, renames)
            except Exception as exc:  # a shape of code migrate does not know: one line, not a traceback
                raise MigrateError(f"{shown}: migrate could not convert it ({type(exc).__name__}: {exc}); nothing was "
                                   "written. Convert it by hand (docs/migration.md) and please report this.") from None
            new, placements[source.name] = converted.text, converted.placement
            owners.update({page: source.name for page in re.findall(r"""\.render\(\s*['"]([^'"]+)['"]""", new)})
            if serves_file(new, source.var, "/widget" if converted.placement == "left_panel" else "/"):
                migration.files.append(source.name)
            migration.notes += converted.notes
            migration.changes.append(f"{shown}: the Blueprint is Plugin({source.name!r}); deck reads use "
                                     f"plugin.instruments; Socket.IO handlers {converted.events or 'none'} are in "
                                     "the plugin's namespace")
            migration.changes += converted.changes
        file.write_text(_python(new, shown), encoding="utf-8")
    migration.target = migration.plugins[name]
    migration.changes.insert(0, f"package {old} -> {name}")
    _convert_pages(out / name, name, _template_folders(out / name, sources), renames, owners, migration)
    _copy_root_files(root, old, name, out, migration, tree)
    migration.skipped = tree.skipped
    _write_project(out, name, migration.plugins, placements, meta, migration)
    return migration


def _convert_pages(package: Path, name: str, folders: List[Path], renames: Dict[str, str], owners: Dict[str, str],
                   migration: Migration) -> None:
    """Convert the templates (the pages under a template folder). Pages elsewhere are served as
    files: they are left as they were (their links to a renamed plugin's URLs follow it). A
    script a template loads (``url_for(..., filename='x.js')``) gets the plugin's connection, as
    the template does: the framework adds its client to the template's page."""
    loaded: Set[str] = set()
    others: List[Tuple[Path, str, str]] = []
    for page in sorted(p for p in package.rglob("*") if p.is_file() and p.suffix in _PAGES + (".js", ".css")):
        shown = _shown(f"{name}/{page.relative_to(package).as_posix()}")
        try:
            text = page.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            if page.suffix in _PAGES:
                migration.notes.append(f"{shown}: not UTF-8 text, so it was copied as it is; convert it by hand.")
            continue
        folder = next((f for f in folders if f in page.parents), None)
        if page.suffix in _PAGES and folder is not None:
            owner = owners.get(page.relative_to(folder).as_posix(), name)
            converted = convert_page(text, shown, renames=renames, plugin=owner)
            page.write_text(converted.text, encoding="utf-8")
            migration.notes += converted.notes
            migration.changes += converted.changes
            loaded |= set(re.findall(r"""filename\s*=\s*['"]([^'"]+\.js)['"]""", text))
        else:
            others.append((page, shown, text))
    for page, shown, text in others:
        new, renamed = rename_urls(text, renames)
        lines = [f"{shown}: {line}" for line in renamed]
        if page.suffix == ".js" and any(page.as_posix().endswith("/" + script) for script in loaded):
            new, count = connect_calls(new)
            if count:
                lines.append(f"{shown}: io(...) -> IvoryPlugin.connect().socket, the plugin's connection ({count}; the "
                             "script is loaded by a template, whose page has the framework's client)")
        elif page.suffix == ".js" and connect_calls(text)[1]:
            migration.notes.append(f"{shown}: its io(...) connects to IvoryOS's default namespace, where the plugin's "
                                   f"handlers no longer are; on a page of the plugin use IvoryPlugin.connect().socket.")
        if new != text:
            page.write_text(new, encoding="utf-8")
            migration.changes += lines
        if page.suffix in _PAGES:
            migration.changes.append(f"{shown}: not a template (it is served as a file), so left as it was")
            migration.notes += raw_page_notes(text, shown, name)


def _copy_root_files(root: Path, old: str, name: str, out: Path, migration: Migration, tree: SourceTree) -> None:
    word = re.compile(rf"\b{re.escape(old)}(?=[./]\w)|(?<=import ){re.escape(old)}\b")  # module paths only
    left: List[str] = []
    for item in sorted(root.iterdir()):
        if item.name.startswith(".") or item.name in ("pyproject.toml", "setup.py", "setup.cfg", "src") or (
                item.is_dir() and item.name in (old, "__pycache__", "build", "dist")) or item.suffix == ".egg-info":
            continue
        found = tree.readable(item, item.name) if _KEEP_AT_ROOT.match(item.name) else None
        if found is not None and not found[1]:
            text = _read(found[0]).decode("utf-8", errors="replace")
            (out / item.name).write_text(word.sub(name, text) if old != name else text, encoding="utf-8")
        elif found is not None or not _KEEP_AT_ROOT.match(item.name):
            left.append(_shown(item.name) + ("/" if item.is_dir() and not item.is_symlink() else ""))
    for extra in ("setup.py", "setup.cfg"):
        if (root / extra).is_file():
            migration.changes.append(f"{extra} left out: the metadata is in pyproject.toml")
    if left:
        migration.notes.append(f"left out of the new project: {', '.join(left)} (copy what you need; imports of "
                               f"{old!r} there must become {name!r})")
