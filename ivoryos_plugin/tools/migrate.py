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
import copy
import errno
import fnmatch
import os
import re
import shutil
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import tomli_w
from packaging.version import InvalidVersion, Version

from ..core.names import ENTRY_POINT_GROUP, required_endpoint
from .checks_source import FRAMEWORK_DIST, TEMPLATE_DIST, _load_toml, read_project
from ..core.names import PluginError, check_name
from .migrate_pages import connect_calls, convert_page, page_title, raw_page_notes, rename_urls
from .migrate_source import (blueprint_argument, convert_plugin_module, find_blueprint, folder_of, rename_endpoints,
                             rename_imports, serves_file)
from .scaffold import check_package_name
from ..core.versions import normalize

_SKIP = ("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".git", ".venv", "venv")
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
    :param notes: what could not be converted (to do by hand), one line each.
    :param plugins: every plugin of the new package: name -> ``module:attribute``.
    :param files: the plugins whose page is a file served as it is (not a template).
    :param owners: each template (by its name in the template folder) -> the plugin that renders it.
    :param skipped: the source's files and folders that were not copied (``path: why``), one line
        each: links that lead out of the source tree, linked folders, loops, special files."""

    path: Path
    target: str
    changes: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    plugins: Dict[str, str] = field(default_factory=dict)
    files: List[str] = field(default_factory=list)
    owners: Dict[str, str] = field(default_factory=dict)

    def lines(self) -> List[str]:
        """The report the CLI prints."""
        made = (f"plugins {', '.join(f'{n} = {t}' for n, t in self.plugins.items())}" if len(self.plugins) > 1
                else f"plugin {self.target}")
        out = [f"Created {self.path} ({made})"] + [f"  changed: {c}" for c in self.changes]
        if self.skipped:
            out.append("Not copied (copy a file in by hand if the plugin needs it):")
            out += [f"  skipped {s}" for s in self.skipped]
        if self.notes:
            out.append("To do or check by hand:")
            out += [f"  - {n}" for n in self.notes]
        return out + ["Next:", f"  pip install -e {self.path}", f"  pytest {self.path}",
                      f"  ivoryos-plugin check {self.path}"]


def _shown(path: str) -> str:
    """A path as one line of the report (a name with a line break or a control character quoted)."""
    return path if path.isprintable() else repr(path)


def _inside(path: str, folder: str) -> bool:
    """Whether the resolved ``path`` is ``folder`` (resolved) or below it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class SourceTree:
    """The files of a source project that ``migrate`` reads and copies, found without following a
    link out of the tree.

    A link (symbolic link) is followed only to a regular file inside the tree, and that file is
    copied as a file. Every other link is skipped and recorded: one that leads out of the tree (a
    key, a home folder, ``/``), one to a folder (even inside the tree: a linked folder is never
    walked, so nothing can loop or be copied twice), a loop, a dangling link; so are special files
    (pipes, devices, sockets). Files are opened without following a link
    (``O_NOFOLLOW``), so a link swapped in while migrate runs is not followed either.

    :param boundary: the source tree: the project folder, or the package folder when a bare
        package was given.
    :param root: what the report's paths are relative to."""

    def __init__(self, boundary: Path, root: Path) -> None:
        self.boundary = os.path.realpath(boundary)
        self.root = root
        self.skipped: List[str] = []

    def _skip(self, rel: str, why: str) -> None:
        self.skipped.append(f"{_shown(rel)}: {why}")

    def readable(self, path: Path, rel: str) -> Optional[Tuple[str, bool]]:
        """``(the real path, is a folder)`` of ``path`` if migrate may read it, else None (recorded).

        :param path: a file or folder of the tree (not followed if it is a link).
        :param rel: how the report names it."""
        try:
            mode = os.lstat(path).st_mode
        except OSError as exc:
            self._skip(rel, f"cannot be read ({exc.strerror})")
            return None
        if stat.S_ISDIR(mode):
            return str(path), True
        if stat.S_ISREG(mode):
            return str(path), False
        if not stat.S_ISLNK(mode):
            self._skip(rel, "not a regular file or folder (a pipe, socket or device)")
            return None
        link = os.readlink(path)
        try:
            real = str(Path(path).resolve(strict=True))
            mode = os.stat(real).st_mode
        except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
            self._skip(rel, f"a link ({link}) that loops back on itself; not followed")
            return None
        except OSError as exc:
            why = "loops back on itself" if exc.errno == errno.ELOOP else f"cannot be followed ({exc.strerror})"
            self._skip(rel, f"a link ({link}) that {why}; not followed")
            return None
        if not _inside(real, self.boundary):
            self._skip(rel, f"a link to {_shown(real)}, outside the source tree {_shown(self.boundary)}; not "
                            "followed, so nothing outside the project is copied into the new package")
            return None
        if stat.S_ISDIR(mode):
            self._skip(rel, f"a link to the folder {_shown(os.path.relpath(real, self.boundary))} of the source "
                            "tree; linked folders are not copied (nothing can loop or be copied twice)")
            return None
        if not stat.S_ISREG(mode):
            self._skip(rel, f"a link to {_shown(real)}, which is not a regular file; not followed")
            return None
        return real, False

    def files(self, folder: Path, prefix: str) -> Iterator[Tuple[str, Optional[str]]]:
        """``(path relative to folder, the real file to copy, or None for a folder)``, depth first,
        sorted; the ignored names (``__pycache__``, ``build``...) are left out silently.

        :param folder: a real folder inside the tree.
        :param prefix: how the report names ``folder`` (``"pkg/"``)."""
        yield from self._files(folder, "", prefix)

    def _files(self, folder: Path, rel: str, prefix: str) -> Iterator[Tuple[str, Optional[str]]]:
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            self._skip(prefix + (rel or "."), f"cannot be listed ({exc.strerror})")
            return
        for name in names:
            if any(fnmatch.fnmatch(name, pattern) for pattern in _SKIP):
                continue
            found = self.readable(folder / name, prefix + rel + name)
            if found is None:
                continue
            real, is_dir = found
            if is_dir:
                yield rel + name + "/", None
                yield from self._files(folder / name, rel + name + "/", prefix)
            else:
                yield rel + name, real


def _read(real: str) -> bytes:
    """The bytes of a regular file, opened without following a link (a link or a pipe put in its
    place after it was checked raises OSError instead of being read)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    with os.fdopen(os.open(real, flags), "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", real)
        return file.read()


def _copy(real: str, dest: Path) -> None:
    """Copy the regular file ``real`` to the new file ``dest`` (its permission bits, no set-id)."""
    dest.write_bytes(_read(real))
    os.chmod(dest, stat.S_IMODE(os.stat(real).st_mode) & 0o777 | 0o600)


def _package_of(source: Path) -> Tuple[Path, Path, Path]:
    """``(project root, package folder, source tree)`` of a project folder or a package folder; the
    source tree is the project folder, or the package folder itself when a bare package is given."""
    source = source.resolve()
    if (source / "__init__.py").is_file() and not any((source / f).is_file() for f in ("pyproject.toml", "setup.py")):
        return source.parent, source, source
    for base in (source / "src", source):
        if base.is_symlink() or not base.is_dir():
            continue
        packages = sorted(p.parent for p in base.glob("*/__init__.py")
                          if p.parent.name not in ("tests", "test", "docs") and not p.parent.is_symlink())
        with_blueprint = [p for p in packages if _plugin_module(p, source) is not None]
        if with_blueprint:
            return source, with_blueprint[0], source
    raise MigrateError(f"{source}: no package there defines a flask.Blueprint at module level; give the folder of the "
                       "plugin's project (with pyproject.toml) or of its package.")


def _plugin_module(package: Path, boundary: Path) -> Optional[Path]:
    """The module of ``package`` that defines the Blueprint (``plugin.py`` first); files reached
    through a link out of ``boundary`` are not read."""
    found = [(rel, real) for rel, real in SourceTree(boundary, package).files(package, "")
             if real is not None and rel.endswith(".py")]
    for rel, real in sorted(found, key=lambda f: (f[0].rsplit("/", 1)[-1] != "plugin.py", f[0].count("/"), f[0])):
        try:
            if find_blueprint(ast.parse(_read(real).decode("utf-8"))) is not None:
                return package / rel
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
    return None


def _title(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


@contextmanager
def _staged(name: str, directory: Path) -> Iterator[Tuple[Path, Path]]:
    """``(target, staging folder)``: the new project is written into a hidden staging folder beside
    ``directory/name`` and renamed to it at the end; the staging folder is removed on every exit
    (success, error, Ctrl-C, SIGTERM), and so are the folders of ``directory`` this created, when
    nothing was made.

    :raises PluginError: ``name`` is unusable.
    :raises FileExistsError: ``directory/name`` exists."""
    check_package_name(name)
    target = Path(directory).resolve() / name
    if os.path.lexists(target):
        raise FileExistsError(f"{target} already exists; remove it or pass another --dir.")
    made = [folder for folder in (target.parent, *target.parent.parents) if not folder.exists()]
    staging: Optional[Path] = None
    with _terminable():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
            os.chmod(staging, 0o755)  # mkdtemp's 0700 would make the package unreadable to other users
            yield target, staging
        finally:
            if staging is not None and staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            if not target.exists():
                for folder in made:  # the deepest first; only the empty ones
                    try:
                        folder.rmdir()
                    except OSError:
                        break


@contextmanager
def _terminable() -> Iterator[None]:
    """While migrate writes, SIGTERM (``kill``, a CI timeout) ends it as Ctrl-C does, through the
    clean-up of :func:`_staged` (a second SIGTERM does not interrupt that clean-up); only in the main
    thread, and only where SIGTERM still has its default action."""
    stopping: List[int] = []

    def stop(signum: int, frame: Optional[FrameType]) -> None:
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt(f"signal {signum}")

    installed = (threading.current_thread() is threading.main_thread()
                 and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)
    if installed:
        signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _os_error(exc: OSError) -> MigrateError:
    where = f" ({exc.filename})" if exc.filename else ""
    return MigrateError(f"{exc.strerror or exc}{where}; nothing was written. Fix that and migrate again.")


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


def _original_metadata(root: Path, tree: SourceTree, migration: Migration) -> Dict[str, Any]:
    """The ``[project]`` table of the source (from pyproject.toml, or read from setup.py/setup.cfg);
    metadata files that are links out of the source tree are not read."""
    readable = {name: tree.readable(root / name, name) for name in ("pyproject.toml", "setup.py", "setup.cfg")
                if os.path.lexists(root / name)}
    pyproject = readable.get("pyproject.toml")
    if pyproject is not None:
        try:
            data = _load_toml(_read(pyproject[0]).decode("utf-8"))
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
    if _load_toml(text) != whole:  # pragma: no cover - the sections are disjoint by construction
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


TESTS = '''"""Tests for the {name} package's plugins, generated by ``ivoryos-plugin migrate``, with the
ivoryos_plugin pytest kit's fixtures: ``client`` (logged in), ``anon_client``, ``deck`` and
``ivoryos_client`` (inside a real in-process IvoryOS); ``plugin`` is each plugin in turn (conftest.py)."""
from pathlib import Path

import pytest

#: the deck instruments the plugins read by name
INSTRUMENTS = {instruments!r}
#: the plugins whose page is a file served as it is (the framework adds its scripts to templates only)
SERVED_AS_FILES = {files!r}


def page(plugin):
    """The page IvoryOS links to: a tab's main page, or a left panel's widget."""
    return f"/ivoryos/{{plugin.name}}/" + ("widget" if plugin.placement == "left_panel" else "")


class StandIn:
    """Stands in for a deck instrument here: every method returns 0. Put your driver's simulator on
    the deck instead to test what the page shows."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: 0


@pytest.fixture
def stocked(deck):
    """The kit's deck with a stand-in for each instrument the plugins read."""
    for name in INSTRUMENTS:
        setattr(deck, name, StandIn())
    return deck


@pytest.mark.parametrize("accept, status", [("text/html", 302), ("application/json", 401)],
                         ids=["browser-redirected-to-login", "program-gets-401"])
def test_page_needs_login(anon_client, plugin, accept, status):
    assert anon_client.get(page(plugin), headers={{"Accept": accept}}).status_code == status


def test_page_is_served(client, plugin, stocked):
    answer = client.get(page(plugin))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    if plugin.name not in SERVED_AS_FILES:
        assert 'name="csrf-token"' in answer.get_data(as_text=True)  # the framework's scripts and CSRF token


def test_page_inside_a_real_ivoryos(ivoryos_client, plugin, stocked):
    answer = ivoryos_client.get(page(plugin))
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_the_package_passes_ivoryos_plugin_check():
    from ivoryos_plugin.tools.checks import check_path

    report = check_path(Path(__file__).resolve().parents[1])
    assert not report.errors, "\\n".join(report.lines())
'''

CONFTEST = '''"""The plugins under test, for the ivoryos_plugin pytest kit's fixtures."""
import pytest

{imports}

pytest_plugins = ["ivoryos_plugin.testing"]

#: every plugin of the package
MIGRATED = [{names}]


@pytest.fixture(params=MIGRATED, ids=[p.name for p in MIGRATED])
def plugin(request):
    """The plugin the kit's fixtures (client, anon_client, live, ivoryos_client) serve: each in turn."""
    return request.param
'''


LINKED = '''

@pytest.fixture
def plugin_app(plugin, deck, tmp_path):
    """The dev host with every plugin of the package, as IvoryOS loads them: their pages link to
    each other (url_for('<other plugin>.main'))."""
    from ivoryos_plugin import create_app
    from ivoryos_plugin.hosts.devhost import stop

    app = create_app(MIGRATED, deck=deck, data_dir=tmp_path / "ivoryos_data", testing=True)
    yield app
    stop(app)
'''


def _linked_order(package: Path, plugins: Dict[str, str], owners: Dict[str, str]) -> Tuple[List[str], bool]:
    """The plugins in an order where a plugin whose pages link to another (``url_for('other.x')``)
    comes after it (the in-process IvoryOS of the tests keeps what it registered), and whether any
    links to another."""
    links: Dict[str, Set[str]] = {n: set() for n in plugins}
    texts: Dict[str, str] = {}
    for target_name, target in plugins.items():
        module = target.partition(":")[0].split(".")
        file = package.parent.joinpath(*module).with_suffix(".py")
        texts[target_name] = file.read_text(encoding="utf-8") if file.is_file() else ""
    for page in package.rglob("*"):
        if page.is_file() and page.suffix in _PAGES:
            owner = next((o for t, o in owners.items() if page.as_posix().endswith("/" + t)), None)
            if owner is not None:
                texts[owner] += page.read_text(encoding="utf-8", errors="replace")
    for owner, text in texts.items():
        links[owner] = {n for n in re.findall(r"""url_for\(\s*['"](\w+)\.""", text) if n in plugins and n != owner}
    order: List[str] = []

    def visit(plugin: str, seen: Set[str]) -> None:
        if plugin in order or plugin in seen:
            return
        for other in sorted(links[plugin]):
            visit(other, seen | {plugin})
        order.append(plugin)

    for plugin in plugins:
        visit(plugin, set())
    return order, any(links.values())


def _write_tests(out: Path, name: str, plugins: Dict[str, str], instruments: List[str], files: List[str],
                 owners: Optional[Dict[str, str]] = None) -> None:
    order, linked = _linked_order(out / name, plugins, owners or {})
    plugins = {n: plugins[n] for n in order}
    imports, names = [], []
    for index, target in enumerate(plugins.values(), start=1):
        module, _, var = target.partition(":")
        imports.append(f"from {module} import {var} as plugin_{index}")
        names.append(f"plugin_{index}")
    (out / "tests").mkdir(exist_ok=True)
    conftest = CONFTEST.format(imports="\n".join(imports), names=", ".join(names)) + (LINKED if linked else "")
    (out / "tests" / "conftest.py").write_text(conftest, encoding="utf-8")
    (out / "tests" / f"test_{name}.py").write_text(TESTS.format(name=name, instruments=instruments, files=files),
                                                   encoding="utf-8")


def _doc(text: str) -> str:
    """``text`` safe inside a triple-quoted docstring (quotes, backslashes and control characters
    escaped): a page's title or file name never ends the docstring early."""
    return repr(text)[1:-1].replace('"', '\\"')


PLUGIN = '''"""{doc_title}: the page {doc_page} as an IvoryOS plugin (made by ``ivoryos-plugin migrate --from-html``)."""
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
    :raises MigrateError: the page cannot be read as UTF-8 text.
    :raises PluginError: ``name`` is unusable.
    :raises FileExistsError: ``directory/name`` exists."""
    page = Path(page)
    try:
        html = page.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MigrateError(f"{page} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 and "
                           "migrate again.") from None
    except OSError as exc:
        raise _os_error(exc) from None
    title = page_title(html, _title(name))
    try:
        with _staged(name, directory) as (target, staging):
            migration = _convert_page_project(page, html, title, name, placement, staging)
            staging.rename(target)
    except FileExistsError:
        raise
    except OSError as exc:
        raise _os_error(exc) from None
    migration.path = target
    return migration


def _convert_page_project(page: Path, html: str, title: str, name: str, placement: str, staging: Path) -> Migration:
    (staging / name / "templates").mkdir(parents=True)
    (staging / name / "__init__.py").write_text(f'"""{_doc(title)}: an IvoryOS plugin."""\n', encoding="utf-8")
    endpoint = required_endpoint(placement)
    (staging / name / "plugin.py").write_text(PLUGIN.format(
        doc_title=_doc(title), doc_page=_doc(page.name), title=title, name=name,
        rule="/" if endpoint == "main" else "/widget", endpoint=endpoint, placement=', placement="left_panel"' if placement == "left_panel" else ""), encoding="utf-8")
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
    migration.plugins[name] = migration.target
    _write_project(staging, name, migration.plugins, {name: placement},
                   {"version": "0.1.0", "readme": "README.md", "description": f"{title}: an IvoryOS plugin page."},
                   migration)
    return migration
