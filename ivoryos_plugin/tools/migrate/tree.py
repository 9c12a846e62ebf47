"""Copying a plugin project for ``ivoryos-plugin migrate`` without following a link out of it: the
source tree, the files it may read, and the staging folder that is removed on every exit."""
from __future__ import annotations

import ast
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
from typing import Dict, Iterator, List, Optional, Tuple


from .source import find_blueprint
from ..scaffold import check_package_name



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
