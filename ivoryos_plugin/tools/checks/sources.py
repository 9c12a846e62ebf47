"""What ``ivoryos-plugin check`` reads of a plugin's files: its Python sources, and the templates it
renders, extends or includes that exist neither in its template folder nor in IvoryOS or the
framework (:func:`template_problems`)."""
from __future__ import annotations

import ast
import functools
import os
import sys
from pathlib import Path
from typing import List, Optional, Set

from flask import Blueprint

from ...core import hints


TEMPLATE_SUFFIXES = (".html", ".htm", ".jinja", ".jinja2", ".j2", ".xml", ".txt")
_SKIP_DIRS = {"tests", "test", "build", "dist", "__pycache__", ".git", ".venv", "venv", "node_modules"}


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
    roots = [Path(__file__).resolve().parents[2] / "templates"]
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
