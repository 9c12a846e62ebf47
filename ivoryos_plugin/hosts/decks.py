"""Deck scripts outside IvoryOS: load one as ``python deck.py`` would run it, with its
``if __name__ == "__main__":`` block, but with the calls that would start a server returning at once.

A deck script is what IvoryOS runs: its globals are the instruments, and labs often make some of
them inside ``if __name__ == "__main__":``, just before ``ivoryos.run(__name__)``. The dev host and
the demo load the script by path, so that block runs too (``__name__`` is ``"__main__"`` while
the script runs, then the module's own name again), with:

- ``ivoryos.run(...)`` returning at once (IvoryOS's own rule: env ``IVORYOS_ACTIVE`` is set while
  the script runs), and ``ivoryos_plugin.run(...)`` returning at once with one printed line;
- ``sys.argv`` as ``python deck.py`` has it (the script's path alone), and the script as
  ``sys.modules["__main__"]`` meanwhile (as ``runpy`` does);
- ``sys.exit(0)`` (or ``sys.exit()``) ending the script, not the host; another exit code is the
  script's failure.

A deck in a checkout of the official plugin template (its package is named ``ivoryos_plugin``, like
the framework) is refused before it runs, with the folder and the fix (:func:`template_problem`).
"""
from __future__ import annotations

import ast
import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator, List, Optional, Union

PACKAGE = "ivoryos_plugin"
#: the framework's own package folder
FRAMEWORK = Path(__file__).resolve().parents[1]
ACTIVE_ENV = "IVORYOS_ACTIVE"  # ivoryos.run returns at once when it is set (IvoryOS 1.6-1.7.2, server.py)


class TemplateShadow(ImportError):
    """The deck's folder holds a package named ``ivoryos_plugin`` that is not the framework, and the
    deck imports from it: in one process the two cannot both be ``ivoryos_plugin``."""


def template_package(folder: Path) -> Optional[Path]:
    """The package folder ``ivoryos_plugin`` in ``folder`` (or ``folder/src``) that is not the
    framework's own (the official plugin template's layout), or None.

    :param folder: a project or deck folder."""
    for base in (folder, folder / "src"):
        package = base / PACKAGE
        if (package / "__init__.py").is_file() and package.resolve() != FRAMEWORK \
                and not (package / "core" / "plugin.py").is_file():
            return package
    return None


def _not_the_framework(package: Path, dotted: str) -> bool:
    """Whether ``ivoryos_plugin.<dotted>`` names a module of the template package that the
    framework has no module for."""
    first = dotted.split(".")[0]
    theirs = (package / f"{first}.py").is_file() or (package / first / "__init__.py").is_file()
    ours = (FRAMEWORK / f"{first}.py").is_file() or (FRAMEWORK / first).is_dir()
    return theirs and not ours


def template_imports(script: Path, package: Path) -> List[str]:
    """What ``script`` imports from the template package ``package`` that the framework has not
    (``ivoryos_plugin.plugin``, ``from ivoryos_plugin import plugin``): read from its source.

    :param script: the deck script.
    :param package: the template's package folder."""
    framework_names = set(getattr(sys.modules.get(PACKAGE), "__all__", ()))
    try:
        tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    found: List[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith(PACKAGE + ".")
                      and _not_the_framework(package, a.name[len(PACKAGE) + 1:])]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith(PACKAGE + ".") and _not_the_framework(package, node.module[len(PACKAGE) + 1:]):
                found.append(node.module)
            elif node.module == PACKAGE:
                found += [f"{PACKAGE}.{a.name}" for a in node.names
                          if a.name != "*" and a.name not in framework_names]
    return sorted(set(found))


def template_problem(script: Path) -> Optional[str]:
    """Why ``script`` (a deck) cannot run next to the framework, or None: it sits in a checkout of
    the official plugin template and imports the template's package, which is named like the
    framework. The message names the folder and a fix that leaves the framework alone.

    :param script: the deck script."""
    script = Path(script).resolve()
    package = template_package(script.parent)
    if package is None:
        return None
    imports = template_imports(script, package)
    if not imports:
        return None
    project = package.parent if package.parent.name != "src" else package.parent.parent
    parent = project.parent
    return (f"the deck {script.name} imports {', '.join(imports)} from the package in {package} (the official plugin "
            f"template's, named like the framework ivoryos_plugin, {FRAMEWORK}): it shadows the framework, so both "
            f"cannot be imported in one process (python {script.name} in {project} gets the template, the dev host "
            f"gets the framework). Fix: ivoryos-plugin migrate {project} --name my_plugin --dir {parent} (a copy "
            f"under its own name; this folder stays as it is), then import my_plugin in the deck and serve "
            f"{parent / 'my_plugin'} (pip install -e {project} would shadow the framework).")


def _skipped_run(*args: Any, **kwargs: Any) -> None:
    """``ivoryos_plugin.run`` while a deck script runs inside the dev host or the demo."""
    print(" * ivoryos_plugin: the deck's ivoryos_plugin.run(...) call returns at once here (this host serves "
          "the plugins itself).", file=sys.stderr, flush=True)


@contextlib.contextmanager
def servers_stay_down(script: Path) -> Iterator[None]:
    """While a deck script runs: ``ivoryos.run`` and ``ivoryos_plugin.run`` return at once, and
    ``sys.argv`` is ``[script]``; all put back afterwards.

    :param script: the deck script."""
    saved_env, saved_argv = os.environ.get(ACTIVE_ENV), sys.argv
    package = sys.modules.get(PACKAGE)
    names = vars(package) if package is not None else {}
    saved_run = names.get("run", _skipped_run)
    os.environ[ACTIVE_ENV] = "1"
    sys.argv = [str(script)]
    if package is not None:
        names["run"] = _skipped_run  # what `import ivoryos_plugin; ivoryos_plugin.run(...)` reads
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop(ACTIVE_ENV, None)
        else:
            os.environ[ACTIVE_ENV] = saved_env
        sys.argv = saved_argv
        if package is not None:
            if saved_run is _skipped_run:
                names.pop("run", None)  # loaded again on first use (the package's __getattr__)
            else:
                names["run"] = saved_run


def _same_file(module: Optional[ModuleType], path: Path) -> bool:
    file = getattr(module, "__file__", None) if module is not None else None
    return bool(file) and os.path.realpath(str(file)) == os.path.realpath(path)


def load_deck(path: Union[str, Path]) -> ModuleType:
    """Load a deck script once, as ``python deck.py`` runs it (its ``if __name__ == "__main__":``
    block included, with the calls that would start a server returning at once: see the module's
    docstring), as a module named after the file whose globals are the instruments.

    :param path: the deck script (``examples/demo_deck.py``).
    :raises FileNotFoundError: no such file.
    :raises TemplateShadow: the deck imports the official plugin template's package from its folder."""
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"deck script {str(path)!r} does not exist; pass --deck path/to/deck.py")
    name = path.stem
    if _same_file(sys.modules.get(name), path):
        return sys.modules[name]
    if _same_file(sys.modules.get("__main__"), path):
        return sys.modules["__main__"]  # `python deck.py` started this host: the script is running already
    problem = template_problem(path)
    if problem:
        raise TemplateShadow(problem)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import the deck script {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    code = spec.loader.get_code(name)  # type: ignore[attr-defined]
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))
    module.__dict__["__name__"] = "__main__"
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = module  # as runpy does: what the script defines finds its module there
    try:
        with servers_stay_down(path):
            exec(code, module.__dict__)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            sys.modules.pop(name, None)
            raise
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if main is not None:
            sys.modules["__main__"] = main
        module.__dict__["__name__"] = name
        sys.path.remove(str(path.parent))
    _own_definitions(module, name)
    return module


def _own_definitions(module: ModuleType, name: str) -> None:
    """Classes and functions the script defined while ``__name__`` was ``"__main__"`` get the
    module's name, so ``sys.modules[obj.__module__]`` is the deck."""
    for value in list(vars(module).values()):
        if isinstance(value, type) or callable(value) and hasattr(value, "__code__"):
            if getattr(value, "__module__", None) == "__main__":
                try:
                    value.__module__ = name
                except (AttributeError, TypeError):
                    pass
