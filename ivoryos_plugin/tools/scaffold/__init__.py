"""``ivoryos-plugin new``: render a complete, pip-installable plugin package from the templates in
``files/`` (read with importlib.resources, rendered with Jinja2 using ``[[ ]]``/``[% %]`` delimiters so
the generated Jinja page template passes through untouched)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import jinja2

from ...core import names
from ...core.names import PluginError

#: Names the generated project layout itself uses.
_LAYOUT_NAMES = frozenset({"tests", "test", "templates", "static", "build", "dist", "docs"})


def _root() -> Any:
    return resources.files(__name__) / "files"


def _walk(folder: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    """``(relative path, Traversable)`` for every template file under ``folder``."""
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        rel = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, rel + "/")
        elif entry.name.endswith(".tmpl"):
            yield rel, entry


def _environment() -> jinja2.Environment:
    def load(template: str) -> Optional[str]:
        node = _root()
        for part in template.split("/"):
            node = node / part
        return str(node.read_text(encoding="utf-8")) if node.is_file() else None

    return jinja2.Environment(
        loader=jinja2.FunctionLoader(load), undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        variable_start_string="[[", variable_end_string="]]", block_start_string="[%",
        block_end_string="%]", comment_start_string="[#", comment_end_string="#]", autoescape=False)


def check_package_name(name: str) -> str:
    """Return ``name`` if it can name both a plugin and a new top-level Python package.

    :param name: the proposed name.
    :raises PluginError: invalid or reserved plugin name, longer than ``names.MAX_PACKAGE_NAME``, a name
        Python or pytest import by themselves (``sitecustomize``, ``conftest``, ``__main__``...), or a
        module of that name already exists (the new package would shadow it, or be shadowed)."""
    if isinstance(name, str):
        names.check_module_name(name)  # first: the length, so no other message repeats a long name
        if name != name.lower():  # before the identifier check, so its suggestion is lower case too
            raise PluginError(name, f"the name must be lower case: IvoryOS shows the plugin's workflow steps "
                                    f"only under a name that starts with a lower-case letter, and Python "
                                    f"packages are named in lower case (PEP 8); use "
                                    f"{_free_name(names.suggest_name(name.lower()))!r}.")
    names.check_name(name)
    if not name.isascii():
        # a Python identifier may be "ä_plugin", but not a distribution name nor, portably, an entry point
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        raise PluginError(name, f"a package name must be ASCII (letters a-z, digits, underscores): it becomes the "
                                f"distribution name in pyproject.toml, which cannot hold {name!r}; use "
                                f"{names.suggest_name(ascii_name)!r}.")
    if _taken(name):
        raise PluginError(name, f"a Python module named {name!r} already exists (or the package layout uses "
                                f"the name); the new package would clash with it. Choose another name, "
                                f"e.g. {name + '_plugin'!r}.")
    return name


def _taken(name: str) -> bool:
    """Whether a module ``name`` exists (stdlib, built in, installed) or the package layout uses it."""
    if name in _LAYOUT_NAMES or name in getattr(sys, "stdlib_module_names", ()) or name in sys.builtin_module_names:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


def _free_name(name: str) -> str:
    """``name``, or ``name_plugin`` when a module of that name exists (a suggestion never refused)."""
    return name + "_plugin" if _taken(name) else name


def _commands(package: Path) -> Dict[str, str]:
    """``pip``, ``python`` and ``cli``: the commands of the environment running ``ivoryos-plugin new``
    (the one that has the framework), as typed in the new package's folder: relative to it when the
    environment is near (``../.venv/bin/pip``), else absolute. Nothing needs activating.

    :param package: the new package's folder."""
    executable = Path(sys.executable)

    def shown(path: Path) -> str:
        here = os.path.abspath(package)
        try:
            relative = os.path.relpath(path, here)
            near = os.path.commonpath([here, str(path)]) != os.path.abspath(os.sep)
        except ValueError:  # another drive
            return str(path)
        return relative if near and relative.split(os.sep).count("..") <= 2 else str(path)

    python = shown(executable)
    pip, cli = executable.with_name("pip"), executable.with_name("ivoryos-plugin")
    return {"python": python, "pip": shown(pip) if pip.exists() else f"{python} -m pip",
            "cli": shown(cli) if cli.exists() else f"{python} -m ivoryos_plugin.tools.cli"}


def _framework_source() -> str:
    """Where the framework was installed from: its checkout (an editable install), else ``""``."""
    root = Path(__file__).resolve().parents[3]
    return str(root) if (root / "setup.py").is_file() and (root / "ivoryos_plugin").is_dir() else ""


def context(name: str, placement: str) -> Dict[str, str]:
    """The template variables for a package ``name``.

    :param name: the plugin (and package) name.
    :param placement: ``"tab"`` or ``"left_panel"``."""
    names.check_placement(name, placement)
    endpoint = names.required_endpoint(placement)
    return {
        "name": name,
        "title": name.replace("_", " ").strip().title(),
        "placement": placement,
        "endpoint": endpoint,
        "rule": "/" if endpoint == "main" else "/widget",
        "page_url": f"/ivoryos/{name}/" if endpoint == "main" else f"/ivoryos/{name}/widget",
        "dist": f"ivoryos-{name.replace('_', '-')}-plugin",
        "framework_source": _framework_source(),
    }


def _target_path(rel: str, ctx: Dict[str, str]) -> str:
    rel = rel[: -len(".tmpl")]
    parts = rel.split("/")
    renamed = {"package": ctx["name"], "page.html": f"{ctx['name']}.html", "test_plugin.py": f"test_{ctx['name']}.py"}
    return "/".join(renamed.get(part, part) for part in parts)


def render_package(name: str, directory: Path, placement: str = "tab") -> Path:
    """Create the plugin package ``directory/name``: pyproject (with the ``ivoryos.plugins`` entry
    point), the plugin module (a page, an action and a live stream that work without hardware),
    its template, a README, and tests using the ivoryos_plugin pytest kit.

    :param name: the plugin name, also the Python package name.
    :param directory: the folder to create the package folder in.
    :param placement: ``"tab"`` (a page in IvoryOS's nav) or ``"left_panel"`` (a widget on every page).
    :raises PluginError: the name or placement is unusable (the message says which name to use).
    :raises FileExistsError: ``directory/name`` already exists.

    Example::

        path = render_package("balance", Path("."))   # then: pip install -e ./balance && pytest ./balance
    """
    check_package_name(name)
    ctx = context(name, placement)
    directory = Path(directory)
    target = directory / name
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or pass another --dir.")
    directory.mkdir(parents=True, exist_ok=True)
    ctx.update(_commands(target))
    env = _environment()
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=directory))
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would make the package unreadable to other users
    try:
        for rel, _ in _walk(_root()):
            out = staging / _target_path(rel, ctx)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(env.get_template(rel).render(**ctx), encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
