"""What ``ivoryos-plugin migrate`` does to Python sources: pure text in, text out (no I/O). Each
change is made at the positions :mod:`ast` reports, in two passes over the plugin module: first
the statements move (``init_socketio``'s handlers, class patches), then the expressions change on
the re-parsed text. What it cannot convert is returned as a note (``file:line: what to do``).

Over 400 lines on purpose: :class:`PluginModule` is one conversion whose passes share the module's
parse (the names bound to the Socket.IO server, the Blueprint's name, the edits made so far); split
apart, each pass would re-derive that state."""
from __future__ import annotations

import ast
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

#: the modules the plugin template imports from: an unused name from them is dropped
_TEMPLATE_MODULES = ("flask", "flask_socketio", "ivoryos")
#: the standard library's modules (imported for no side effect a plugin relies on)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) - {"__future__", "antigravity", "this"}
#: what IvoryOS's connection events become: the framework authenticates its namespaces itself
_CONNECTION_EVENTS = ("connect", "disconnect")
_DOCS = "docs/migration.md"


@dataclass
class Converted:
    """The result of converting one module.

    :param text: the new source.
    :param notes: what could not be converted, one line each (``file:line: ...``).
    :param events: the Socket.IO events now handled in the plugin's namespace.
    :param placement: ``"tab"``, or ``"left_panel"`` when the Blueprint's ``plugin_type`` said so.
    :param changes: what was converted in a way the report should name, one line each."""

    text: str
    notes: List[str] = field(default_factory=list)
    events: List[str] = field(default_factory=list)
    placement: str = "tab"
    changes: List[str] = field(default_factory=list)


class Edits:
    """Replacements at :mod:`ast` positions, applied from the end; one inside another is dropped.

    :param text: the source the positions refer to."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.edits: List[Tuple[int, int, str]] = []

    def pos(self, line: int, col: int) -> int:
        """The character offset of ``(line, col)`` (ast columns count UTF-8 bytes)."""
        text = self.lines[line - 1] if line <= len(self.lines) else ""
        return self.starts[line - 1] + len(text.encode()[:col].decode(errors="replace"))

    def span(self, node: ast.AST, lines: bool = False) -> Tuple[int, int]:
        """Where ``node`` is; ``lines``: whole lines, decorators included."""
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])  # type: ignore[attr-defined]
        last = int(getattr(node, "end_lineno", None) or node.lineno)  # type: ignore[attr-defined]
        if lines:
            return self.starts[first - 1], self.starts[min(last, len(self.lines))]
        return (self.pos(node.lineno, node.col_offset),  # type: ignore[attr-defined]
                self.pos(last, int(getattr(node, "end_col_offset", 0) or 0)))

    def source(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end]

    def put(self, start: int, end: int, text: str) -> None:
        self.edits.append((start, end, text))

    def replace(self, node: ast.AST, text: str, lines: bool = False) -> None:
        self.put(*self.span(node, lines), text)

    def covered(self, node: ast.AST) -> bool:
        """Whether an edit already replaces the text of ``node``."""
        start, end = self.span(node)
        return any(s <= start and end <= e and s != e for s, e, _ in self.edits)

    def apply(self) -> str:
        text, floor = self.text, len(self.text) + 1
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], -e[1]), reverse=True):
            if end > floor:
                continue
            text = text[:start] + new + text[end:]
            floor = start
        return text


def rename_imports(text: str, old: str, new: str) -> str:
    """Rewrite ``import old...`` and ``from old... import`` to the new package name.

    :param text: a Python source.
    :param old: the old top-level package name.
    :param new: the new one."""
    edits = Edits(text)
    word = re.compile(rf"\b{re.escape(old)}\b")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == old:
            edits.replace(node, word.sub(new, edits.source(node), count=1))
        elif isinstance(node, ast.Import) and any(a.name.split(".")[0] == old for a in node.names):
            edits.replace(node, word.sub(new, edits.source(node)))
    return edits.apply()


def _called(node: ast.AST) -> str:
    func = node.func if isinstance(node, ast.Call) else None
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def find_blueprint(tree: ast.Module) -> Optional[Tuple[str, ast.Call]]:
    """The module-level ``name = Blueprint(...)`` of a plugin module, or None.

    :param tree: the module's syntax tree."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call) and _called(node.value) == "Blueprint"):
            return node.targets[0].id, node.value
    return None


#: ``Blueprint``'s arguments after ``name`` and ``import_name``, in order
_BLUEPRINT_ARGS = ("static_folder", "static_url_path", "template_folder", "url_prefix", "subdomain", "url_defaults",
                   "root_path", "cli_group")


def blueprint_argument(call: ast.Call, name: str) -> Optional[ast.expr]:
    """The expression given for the ``Blueprint(...)`` argument ``name`` (by keyword or position).

    :param call: the ``Blueprint(...)`` call.
    :param name: ``"name"``, ``"import_name"`` or one of the later arguments."""
    order = ("name", "import_name") + _BLUEPRINT_ARGS
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    index = order.index(name)
    return call.args[index] if index < len(call.args) else None


def folder_of(node: Optional[ast.expr]) -> Optional[str]:
    """The folder (relative to the module) an argument such as ``template_folder`` names: a string,
    or the trailing strings of ``os.path.join(os.path.dirname(__file__), "a", "b")``; None when
    it cannot be read from the source.

    :param node: the argument's expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.strip("/") or None
    if isinstance(node, ast.Call) and _called(node) == "join" and node.args:
        tail: List[str] = []
        for arg in reversed(node.args):
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                break
            tail.insert(0, arg.value)
        return "/".join(tail) if tail and len(tail) < len(node.args) else None
    return None


def _is_doc(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _string(node: Optional[ast.AST]) -> Optional[str]:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _handler_decorator(deco: ast.expr, receivers: Set[str]) -> Optional[Tuple[str, Optional[str]]]:
    """``(event, namespace or None)`` of a Socket.IO handler decorator on one of the server's
    names (``receivers``): ``@sio.on("event")``, ``@sio.on("event", namespace="/x")``, ``@sio.event``
    (the event is then the function's name: returned as ``""``)."""
    if isinstance(deco, ast.Attribute) and deco.attr == "event" and isinstance(deco.value, ast.Name) \
            and deco.value.id in receivers:
        return "", None
    if not (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr in ("on", "event")
            and isinstance(deco.func.value, ast.Name) and deco.func.value.id in receivers):
        return None
    if deco.func.attr == "event" and not deco.args:
        return "", _string(next((k.value for k in deco.keywords if k.arg == "namespace"), None))
    event = _string(deco.args[0]) if deco.args else None
    if event is None:
        return None
    namespace = next((k.value for k in deco.keywords if k.arg == "namespace"), deco.args[1] if len(deco.args) > 1 else None)
    return event, _string(namespace) if namespace is not None else None


def _registration(stmt: ast.stmt, receivers: Set[str]) -> Optional[Tuple[str, str, Optional[str]]]:
    """``(event, handler name, namespace)`` of ``sio.on_event("event", handler)`` or
    ``sio.on("event")(handler)``."""
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    if not isinstance(call, ast.Call) or len(call.args) < 1:
        return None
    func = call.func
    if (isinstance(func, ast.Attribute) and func.attr == "on_event" and isinstance(func.value, ast.Name)
            and func.value.id in receivers and len(call.args) >= 2 and isinstance(call.args[1], ast.Name)):
        event = _string(call.args[0])
        namespace = next((k.value for k in call.keywords if k.arg == "namespace"), call.args[2] if len(call.args) > 2 else None)
        return (event, call.args[1].id, _string(namespace)) if event else None
    if isinstance(func, ast.Call) and isinstance(call.args[0], ast.Name) and len(call.args) == 1:
        found = _handler_decorator(func, receivers)
        if found and found[0]:
            return found[0], call.args[0].id, found[1]
    return None


class PluginModule:
    """The conversion of the module that defines the plugin's Blueprint.

    :param text: the module's source.
    :param file: its name, for the notes.
    :param name: the new plugin name.
    :param title: the plugin's title.
    :param renames: old Blueprint name -> new plugin name, for ``url_for("old.endpoint")``."""

    def __init__(self, text: str, file: str, name: str, title: str, renames: Optional[Dict[str, str]] = None) -> None:
        self.file, self.name, self.title = file, name, title
        self.renames = dict(renames or {})
        self.notes: List[str] = []
        self.changes: List[str] = []
        self.events: List[str] = []
        self.original = text
        tree = ast.parse(text)
        found = find_blueprint(tree)
        if found is None:
            raise ValueError(f"{file} defines no module-level Blueprint")
        self.var = found[0]
        self.state = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                      and (n.module or "").split(".")[0] == "ivoryos" for a in n.names if a.name == "global_state"}
        self.state |= {t.id for n in tree.body if isinstance(n, ast.Assign) and _called(n.value) == "GlobalConfig"
                       for t in n.targets if isinstance(t, ast.Name)}
        #: the names IvoryOS's Socket.IO server has in this module (init_socketio's argument, its aliases)
        self.servers: Set[str] = {"socketio", "sio"}
        #: the functions that became ``@plugin.on`` handlers (their bare ``emit`` answers the sender)
        self.handlers: Set[str] = set()
        #: IvoryOS connection handlers kept as plain functions (never called; left as they were)
        self.plain: Set[str] = set()
        self.static = "static"
        #: module-level ``NAME = expression`` (a folder given as a constant: ``static_folder=STATIC``)
        self.constants = {n.targets[0].id: n.value for n in tree.body if isinstance(n, ast.Assign)
                          and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)}
        self.text = text
        self.target = ""
        self.placement = "tab"

    def note(self, node: ast.AST, message: str, text: Optional[str] = None) -> None:
        """Record what could not be converted, with the code it is about.

        :param node: the statement or expression.
        :param message: what to do by hand.
        :param text: the source ``node`` is from (default: the current text)."""
        line = (text or self.text).splitlines()[node.lineno - 1].strip()  # type: ignore[attr-defined]
        self.notes.append(f"{self.file}: `{line if len(line) <= 70 else line[:67] + '...'}`: {message}")

    # ------------------------------------------------------------- pass 1: statements move
    def move_statements(self) -> None:
        """``init_socketio``'s handlers to module level as ``@plugin.on``; class patches to observers."""
        tree = ast.parse(self.text)
        edits = Edits(self.text)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "init_socketio":
                edits.replace(node, self._hoist(node, edits), lines=True)
        self._class_patches(tree, edits)
        self.text = edits.apply()

    def _server_names(self, func: ast.FunctionDef) -> Set[str]:
        """init_socketio's argument and every name it is assigned to there (``global sio; sio = _sio``)."""
        names = {func.args.args[0].arg if func.args.args else "socketio"}
        grown = True
        while grown:
            found = {t.id for s in ast.walk(func) if isinstance(s, ast.Assign) and isinstance(s.value, ast.Name)
                     and s.value.id in names for t in s.targets if isinstance(t, ast.Name)}
            grown = not found <= names
            names |= found
        return names

    def _function_code(self, stmt: ast.stmt, edits: Edits, drop: List[ast.expr]) -> str:
        """The function's source, dedented, without the decorators in ``drop``."""
        first = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        gone = {line for deco in drop for line in range(deco.lineno, int(deco.end_lineno or deco.lineno) + 1)}
        lines = self.text[slice(*edits.span(stmt, lines=True))].splitlines(keepends=True)
        return textwrap.dedent("".join(line for i, line in enumerate(lines, start=first) if i not in gone))

    def _hoist(self, func: ast.FunctionDef, edits: Edits) -> str:
        servers = self._server_names(func)
        self.servers |= servers
        receivers = servers | {"socketio"}
        out: List[str] = []
        later: List[str] = []
        for stmt in func.body:
            if isinstance(stmt, (ast.Global, ast.Nonlocal, ast.Pass)) or _is_doc(stmt) or (
                    isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name) and stmt.value.id in servers):
                continue
            registered = _registration(stmt, receivers)
            if registered is not None:
                event, handler, namespace = registered
                if self._accept(stmt, event, handler, namespace):
                    later.append(f"{self.var}.on({event!r})({handler})\n")
                continue
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.note(stmt, "a statement of init_socketio that is not a @socketio.on handler was left out; "
                                "put it in an @plugin.on_start function.")
                continue
            handlers = [(d, found) for d in stmt.decorator_list
                        for found in [_handler_decorator(d, receivers)] if found is not None]
            code = self._function_code(stmt, edits, [d for d, _ in handlers])
            if not handlers:
                out.append("\n\n" + code)  # a helper of the handlers
                continue
            event = handlers[0][1][0] or stmt.name
            namespace = handlers[0][1][1]
            body = [s for s in stmt.body if not _is_doc(s)]
            if event in _CONNECTION_EVENTS:
                if all(isinstance(s, ast.Pass) for s in body):
                    self.changes.append(f"{self.file}: the {event!r} handler, which did nothing, was dropped (the "
                                        "framework handles connections to the plugin's namespace)")
                    continue
                self.note(stmt, f"the {event!r} handler is now a plain function, never called: the framework "
                                "authenticates connections to the plugin's namespace itself; send what it sends with "
                                "plugin.publish (replayed to pages that connect later).")
                self.plain.add(stmt.name)
                out.append("\n\n" + code)
                continue
            if self._accept(stmt, event, stmt.name, namespace):
                out.append(f"\n\n@{self.var}.on({event!r})\n{code}")
            else:
                out.append("\n\n" + code)
        text = "".join(out).lstrip("\n") + ("\n" if out else "")
        return text + ("\n\n" + "".join(later) if later else "")

    def _accept(self, stmt: ast.stmt, event: str, handler: str, namespace: Optional[str]) -> bool:
        """Whether ``handler`` can handle ``event`` in the plugin's namespace (a note says why not)."""
        if event in ("subscribe", "unsubscribe") or event in self.events:
            why = "the framework's own" if event not in self.events else "handled twice"
            self.note(stmt, f"the event {event!r} is {why} in the plugin's namespace, so {handler} was kept as a "
                            "plain function; give it another event name and @plugin.on it.")
            return False
        self.events.append(event)
        self.handlers.add(handler)
        if namespace not in (None, "/"):
            self.changes.append(f"{self.file}: the event {event!r} was handled in the namespace {namespace!r}; it is "
                                f"now in the plugin's (/ivoryos/{self.name}), where the page's IvoryPlugin.connect() "
                                "connects")
        return True

    def _class_patches(self, tree: ast.Module, edits: Edits) -> None:
        originals = {n.targets[0].id: n for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                     and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Attribute)}
        functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                    and target.value.id != self.var and isinstance(value, ast.Name) and value.id in functions):
                continue
            cls, method, wrapper = target.value.id, target.attr, functions[value.id]
            original = self._patch_shape(cls, method, wrapper, originals)
            if original is None:
                self.note(node, f"the class patch {cls}.{method} = {wrapper.name} was kept: its wrapper is not "
                                       "`result = original(self, *args, **kwargs); ...; return result`; port it to "
                                       f"{self.var}.observe(name, callback, methods=[{method!r}]) by hand ({_DOCS}).")
                continue
            edits.replace(node, "", lines=True)
            edits.replace(originals[original], "", lines=True)
            edits.replace(wrapper, self._observer(cls, method, wrapper, edits), lines=True)
            self.changes.append(f"{self.file}: the class patch {cls}.{method} = {wrapper.name} -> "
                                f"{self.var}.observe(name, {wrapper.name}, methods=[{method!r}]) on each {cls} of the "
                                "deck, installed at start (removed when the plugin stops)")

    @staticmethod
    def _patch_shape(cls: str, method: str, wrapper: ast.FunctionDef, originals: Dict[str, ast.Assign]) -> Optional[str]:
        """The name of the saved original method when ``wrapper`` has the usual shape, else None."""
        a = wrapper.args
        body = [s for s in wrapper.body if not _is_doc(s)]
        if len(a.args) != 1 or a.vararg is None or a.kwarg is None or len(body) < 2:
            return None
        first, last = body[0], body[-1]
        if not (isinstance(first, ast.Assign) and len(first.targets) == 1 and isinstance(first.targets[0], ast.Name)
                and isinstance(first.value, ast.Call) and isinstance(first.value.func, ast.Name)
                and isinstance(last, ast.Return) and isinstance(last.value, ast.Name)
                and last.value.id == first.targets[0].id):
            return None
        saved = originals.get(first.value.func.id)
        ok = (saved is not None and isinstance(saved.value, ast.Attribute) and saved.value.attr == method
              and isinstance(saved.value.value, ast.Name) and saved.value.value.id == cls)
        return first.value.func.id if ok else None

    def _observer(self, cls: str, method: str, wrapper: ast.FunctionDef, edits: Edits) -> str:
        a, v = wrapper.args, self.var
        body = [s for s in wrapper.body if not _is_doc(s)]
        result = body[0].targets[0].id  # type: ignore[attr-defined]
        middle = self.text[edits.span(body[1], lines=True)[0]:edits.span(body[-2], lines=True)[1]] if len(body) > 2 else ""
        middle = textwrap.indent(textwrap.dedent(middle), "    ")
        return (f"def {wrapper.name}(call):\n"
                f'    """After each {cls}.{method} call on the deck, whoever made it ({v}.observe calls this; it was a '
                f'class patch)."""\n'
                f'    if "error" in call:\n        return\n'
                f'    {a.args[0].arg} = {v}.instrument(call["instrument"])\n'
                f'    {a.vararg.arg}, {a.kwarg.arg}, {result} = call["args"], call["kwargs"], call.get("result")\n'  # type: ignore[union-attr]
                f"{middle}\n\n"
                f"@{v}.on_start\n"
                f"def _observe_{cls.lower()}_{method}(deck):\n"
                f'    """Observe {cls}.{method} on each {cls} of the deck (migrated from a class patch)."""\n'
                f"    for name, instrument in {v}.instruments.items():\n"
                f"        if isinstance(instrument, {cls}):\n"
                f"            {v}.observe(name, {wrapper.name}, methods=[{method!r}])\n")

    # ------------------------------------------------------------- pass 2: expressions change
    def change_expressions(self) -> None:
        """The Blueprint, ``render_template``, ``emit``, static files, ``url_for``, deck reads; then
        tidy: statements left empty get ``pass``, imports the conversion left unused go, ``Plugin``
        (and what the new code needs) is imported."""
        tree = ast.parse(self.text)
        edits = Edits(self.text)
        parents = {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        removals: List[ast.stmt] = []
        placement = self.placement = self._blueprint_statements(tree, removals)
        found = find_blueprint(tree)
        assert found is not None
        call = found[1]
        needs: Set[str] = set()
        base_values = {id(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n) == "render_template"
                       for k in n.keywords if k.arg == "base_exists"}
        base_kept = any(isinstance(n, ast.Name) and n.id == "base_exists" and isinstance(n.ctx, ast.Load)
                        and id(n) not in base_values for n in ast.walk(tree))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["base_exists"]:
                if not base_kept:
                    removals.append(node)
            elif isinstance(node, ast.Call) and _called(node) == "render_template" and isinstance(node.func, ast.Name):
                edits.replace(node.func, f"{self.var}.render")
                self._drop_keywords(node, edits, {"base_exists"})
            elif isinstance(node, ast.Call) and self._is_emit(node):
                self._emit(node, edits, self._top_function(node, parents))
            elif isinstance(node, ast.Call) and self._on_self(node.func, "send_static_file"):
                args = ", ".join(edits.source(a) for a in [*node.args, *node.keywords])
                edits.replace(node, f"send_from_directory({self._static_path()}, {args})")
                needs |= {"os", "send_from_directory"}
                self.changes.append(f"{self.file}: {self.var}.send_static_file(...) -> send_from_directory(the same "
                                    f"folder, ...): a Plugin serves its static/ folder through its own route")
            elif self._on_self(node, "static_folder") and isinstance(getattr(node, "ctx", None), ast.Load):
                edits.replace(node, self._static_path())
                needs.add("os")
            elif isinstance(node, ast.Call) and _called(node) == "url_for" and node.args:
                self._url_for(node.args[0], edits)
        edits.replace(call, self._plugin_call(call, edits, placement))
        self._deck(tree, edits, removals)
        self._remove(tree, parents, removals, edits)
        self.text = _tidy(edits.apply(), self.state)
        self.text = self._dead_imports(self.text)
        lines = self.text.splitlines(keepends=True)
        bound = _bound(ast.parse(self.text))
        imports = ["from ivoryos_plugin import Plugin\n"] + (["import os\n"] if "os" in needs - bound else []) + (
            ["from flask import send_from_directory\n"] if "send_from_directory" in needs - bound else [])
        at = _after_imports(ast.parse(self.text))
        lines[at:at] = imports
        self.text = "".join(lines)
        self._leftovers()

    def _on_self(self, node: ast.AST, attr: str) -> bool:
        """Whether ``node`` is ``<the blueprint>.<attr>``."""
        return (isinstance(node, ast.Attribute) and node.attr == attr and isinstance(node.value, ast.Name)
                and node.value.id == self.var)

    def _static_path(self) -> str:
        return f"os.path.join({self.var}.root_path, {self.static!r})"

    @staticmethod
    def _top_function(node: ast.AST, parents: Dict[int, ast.AST]) -> str:
        """The name of the module-level function ``node`` is in ("" at module level)."""
        name = ""
        while id(node) in parents:
            node = parents[id(node)]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = node.name
        return name

    def _url_for(self, first: ast.expr, edits: Edits) -> None:
        """``url_for("old.endpoint")`` -> ``url_for("new.endpoint")`` (a Blueprint renamed)."""
        endpoint = _string(first)
        old, dot, rest = (endpoint or "").partition(".")
        if dot and old in self.renames and self.renames[old] != old:
            edits.replace(first, repr(f"{self.renames[old]}.{rest}"))
            self.changes.append(f"{self.file}: url_for({endpoint!r}) -> url_for('{self.renames[old]}.{rest}')")

    def _plugin_call(self, call: ast.Call, edits: Edits, placement: str) -> str:
        """``Plugin(name, __name__, title=..., ...)`` for the ``Blueprint(...)`` call: the Blueprint's
        own static route is dropped (a Plugin has one, endpoint ``<name>.static``; two cannot register)."""
        kept: List[str] = []
        for arg in _BLUEPRINT_ARGS:
            value = blueprint_argument(call, arg)
            if value is None or arg in ("url_prefix", "static_folder", "static_url_path"):
                continue
            kept.append(f"{arg}={edits.source(value)}")
        kept += [edits.source(k) for k in call.keywords if k.arg is None]
        folder, url = blueprint_argument(call, "static_folder"), blueprint_argument(call, "static_url_path")
        where = f"/ivoryos/{self.name}/static/ (endpoint {self.name}.static)"
        if folder is not None:
            named = folder_of(self.constants.get(folder.id) if isinstance(folder, ast.Name) else folder)
            self.static = named or "static"
            if named is not None and named.rstrip("/").split("/")[-1] == "static" and "/" not in named.strip("/"):
                also = f" and static_url_path={edits.source(url)}" if url is not None else ""
                self.changes.append(f"{self.file}: static_folder={edits.source(folder)}{also} dropped: the Plugin "
                                    f"serves its static/ folder itself at {where}; a second static route cannot "
                                    "register")
            else:
                self.notes.append(f"{self.file}: static_folder={edits.source(folder)} was dropped (a Plugin serves "
                                  f"only its package's static/ folder, at {where}); move those files into "
                                  f"{self.name}/static/.")
        if url is not None and _string(url) not in ("/static", "static"):
            self.notes.append(f"{self.file}: static_url_path={edits.source(url)} was dropped: the files are now at "
                              f"{where}; url_for('{self.name}.static', filename=...) follows, fix links written by "
                              "hand.")
        args = [repr(self.name), "__name__", f"title={self.title!r}"] + (
            ['placement="left_panel"'] if placement == "left_panel" else []) + kept
        return f"Plugin({', '.join(args)})"

    def _blueprint_statements(self, tree: ast.Module, removals: List[ast.stmt]) -> str:
        placement = "tab"
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self.var:
                if target.attr == "plugin_type":
                    placement = "left_panel" if isinstance(value, ast.Constant) and value.value == "left_panel" else "tab"
                    removals.append(node)
                elif target.attr == "init_socketio":
                    removals.append(node)
        return placement

    @staticmethod
    def _remove(tree: ast.Module, parents: Dict[int, ast.AST], removals: List[ast.stmt], edits: Edits) -> None:
        """Remove ``removals``; a block left empty gets ``pass``, and a ``try`` whose body is all
        removed and whose handlers only ``pass`` (``try: base_exists = ... except: pass``) goes too."""
        removed = {id(n) for n in removals}
        grown = True
        while grown:
            grown = False
            for node in ast.walk(tree):
                if (isinstance(node, ast.Try) and id(node) not in removed and all(id(s) in removed for s in node.body)
                        and not node.orelse and not node.finalbody
                        and all(all(isinstance(s, ast.Pass) for s in h.body) for h in node.handlers)):
                    removed.add(id(node))
                    grown = True

        def gone(node: ast.AST) -> bool:
            while id(node) in parents:
                node = parents[id(node)]
                if id(node) in removed:
                    return True
            return False

        for parent in ast.walk(tree):
            if id(parent) in removed or gone(parent):
                continue
            for name in ("body", "orelse", "finalbody"):
                block = getattr(parent, name, None)
                if not (isinstance(block, list) and block and isinstance(block[0], ast.stmt)):
                    continue
                dropped = [s for s in block if id(s) in removed]
                whole = len(dropped) == len(block) and not isinstance(parent, ast.Module)
                for i, stmt in enumerate(dropped):
                    filler = edits.lines[stmt.lineno - 1][:stmt.col_offset] + "pass\n" if whole and not i else ""
                    edits.replace(stmt, filler, lines=True)

    @staticmethod
    def _drop_keywords(call: ast.Call, edits: Edits, names: Set[str]) -> None:
        items: List[ast.AST] = sorted([*call.args, *call.keywords], key=lambda n: (n.lineno, n.col_offset))  # type: ignore[attr-defined]
        for i, item in enumerate(items):
            if isinstance(item, ast.keyword) and item.arg in names:
                if i:
                    edits.put(edits.span(items[i - 1])[1], edits.span(item)[1], "")
                elif len(items) > 1:
                    edits.put(edits.span(item)[0], edits.span(items[1])[0], "")
                else:
                    edits.replace(item, "")

    def _is_emit(self, node: ast.Call) -> bool:
        func = node.func
        return (isinstance(func, ast.Name) and func.id == "emit") or (
            isinstance(func, ast.Attribute) and func.attr == "emit" and isinstance(func.value, ast.Name)
            and func.value.id in self.servers)

    def _emit(self, node: ast.Call, edits: Edits, function: str) -> None:
        """``emit`` in a handler answers the page that sent the event, as before (in the plugin's
        namespace now); ``socketio.emit`` and a broadcast become ``plugin.publish``."""
        keywords = {k.arg: k.value for k in node.keywords if k.arg is not None}
        broadcast = "broadcast" in keywords and not (isinstance(keywords["broadcast"], ast.Constant)
                                                     and not keywords["broadcast"].value)
        if function in self.plain:
            return
        if isinstance(node.func, ast.Name) and function in self.handlers and not broadcast \
                and not set(keywords) & {"to", "room"}:
            if "namespace" in keywords:
                self._drop_keywords(node, edits, {"namespace"})
                self.changes.append(f"{self.file}: emit(..., namespace=...) in {function}: the answer goes to the "
                                    "page that sent the event, in the plugin's namespace")
            return
        if isinstance(node.func, ast.Name) and not broadcast:
            self.note(node, f"emit() outside a Socket.IO handler now sends {self.var}.publish, to every page of the "
                            "plugin (return a value from a handler to answer the sender only).")
        extra = set(keywords) - {"namespace", "broadcast"}
        if extra or len(node.args) > 2:
            self.note(node, f"emit(...) with {sorted(extra) or 'more arguments'}: now "
                            f"{self.var}.publish(event, data), which reaches every page of the plugin.")
        self.changes.append(f"{self.file}: {'socketio.emit' if isinstance(node.func, ast.Attribute) else 'emit'}"
                            f"(...{', broadcast=True' if broadcast else ''}) -> {self.var}.publish(...): every page "
                            "of the plugin gets it, and a page that connects later gets the last value")
        edits.replace(node.func, f"{self.var}.publish")
        self._drop_keywords(node, edits, set(keywords))

    # ------------------------------------------------------------- the deck
    def _deck(self, tree: ast.Module, edits: Edits, removals: List[ast.stmt]) -> None:
        """``global_state.deck`` reads (and a local ``deck = global_state.deck``) -> the plugin's instruments."""
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            aliases = [s for s in ast.walk(func) if isinstance(s, ast.Assign) and len(s.targets) == 1
                       and isinstance(s.targets[0], ast.Name) and self._deck_of(s.value)]
            for alias in aliases:
                name = alias.targets[0].id  # type: ignore[attr-defined]
                uses = [n for n in ast.walk(func) if isinstance(n, ast.Name) and n.id == name and n is not alias.targets[0]]
                marks, noted = len(edits.edits), len(self.notes)
                for node in ast.walk(func):
                    self._deck_read(node, edits, name)
                new = edits.edits[marks:]
                if all(any(s <= edits.span(u)[0] < e for s, e, _ in new) for u in uses):
                    removals.append(alias)
                else:
                    del edits.edits[marks:]
                    del self.notes[noted:]
                    self.note(alias, f"`{name} = ...deck` is used in ways migrate does not convert, so it was kept; use "
                                     f"{self.var}.instruments (name -> instrument) instead of the deck module.")
        for node in ast.walk(tree):
            self._deck_read(node, edits, None)

    def _deck_of(self, node: ast.AST, alias: Optional[str] = None) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "deck" and isinstance(node.value, ast.Name):
            return node.value.id in self.state
        return alias is not None and isinstance(node, ast.Name) and node.id == alias

    def _kept(self, node: ast.AST, what: str) -> None:
        self.note(node, f"{what} is the deck module's own, not an instrument (plugin.instruments holds only "
                        "instruments: no names starting with _ or an uppercase letter, no numbers or strings), so "
                        "it still reads IvoryOS's global_state.deck; that works inside IvoryOS.")

    def _deck_read(self, node: ast.AST, edits: Edits, alias: Optional[str]) -> None:
        v = self.var
        if not hasattr(node, "lineno") or edits.covered(node):
            return
        if isinstance(node, ast.Attribute) and self._deck_of(node.value, alias):
            if _instrument_name(node.attr):
                edits.replace(node, f"{v}.instrument({node.attr!r})")
            else:
                self._kept(node, f"deck.{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args
              and self._deck_of(node.args[0], alias)):
            rest = [edits.source(a) for a in node.args[1:]]
            literal = _string(node.args[1]) if len(node.args) > 1 else None
            if literal is not None and not _instrument_name(literal):
                self._kept(node, f"{node.func.id}(deck, {literal!r})")
                return
            new = {("getattr", 1): f"{v}.instrument({', '.join(rest)})",
                   ("getattr", 2): f"{v}.instruments.get({', '.join(rest)})",
                   ("hasattr", 1): f"({''.join(rest)} in {v}.instruments)",
                   ("vars", 0): f"{v}.instruments", ("dir", 0): f"list({v}.instruments)"}.get((node.func.id, len(rest)))
            if new is None:
                return
            edits.replace(node, new)
            if literal is None:
                self.changes.append(f"{self.file}: {edits.source(node)} -> {new}: it now lists or finds only the deck's "
                                    "instruments (not its numbers, strings, or names starting with _ or an uppercase "
                                    "letter)")
        elif isinstance(node, (ast.If, ast.IfExp, ast.While, ast.UnaryOp, ast.BoolOp)):
            tests = node.values if isinstance(node, ast.BoolOp) else [node.operand] if isinstance(node, ast.UnaryOp) \
                else [node.test]
            for test in tests:
                if self._deck_of(test, alias) and not (isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.Not)):
                    edits.replace(test, f"{v}.instruments")
                    self.changes.append(f"{self.file}: a test of the deck (`if deck`) -> whether the deck has "
                                        "instruments (a deck with none counts as no deck)")
        elif (isinstance(node, ast.Compare) and len(node.ops) == 1 and self._deck_of(node.left, alias)
              and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value is None):
            edits.replace(node, f"not {v}.instruments" if isinstance(node.ops[0], ast.Is) else f"bool({v}.instruments)")
            self.changes.append(f"{self.file}: `{edits.source(node)}` -> whether the deck has instruments (a deck "
                                "with none counts as no deck)")

    # ------------------------------------------------------------- tidy
    def _dead_imports(self, text: str) -> str:
        """Drop the imports the conversion left unused (names the original module used), and unused
        imports of Flask, Flask-SocketIO, IvoryOS and the standard library; another import the
        original did not use either (perhaps for its side effects) is kept."""
        before = _loaded(ast.parse(self.original))
        tree = ast.parse(text)
        after = _loaded(tree)
        edits = Edits(text)
        dropped: List[str] = []
        for node in tree.body:
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "module", "") == "__future__":
                continue
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            ours = module.split(".")[0] in _TEMPLATE_MODULES or (node.level == 0 and module.split(".")[0] in _STDLIB) \
                if isinstance(node, ast.ImportFrom) else False
            dead = [a for a in node.names if a.name != "*" and ((a.asname or a.name).split(".")[0] in before or ours
                                                               or (module == "" and a.name.split(".")[0] in _STDLIB))
                    and (a.asname or a.name).split(".")[0] not in after]
            if not dead:
                continue
            dropped += [a.asname or a.name for a in dead]
            live = [a for a in node.names if a not in dead]
            if not live:
                edits.replace(node, "", lines=True)
                continue
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in live)
            edits.replace(node, f"from {'.' * node.level}{node.module or ''} import {names}"
                          if isinstance(node, ast.ImportFrom) else f"import {names}")
        if dropped:
            self.changes.append(f"{self.file}: imports the new code no longer uses removed: {', '.join(dropped)}")
        return re.sub(r"\n{4,}", "\n\n\n", edits.apply())

    def _leftovers(self) -> None:
        tree = ast.parse(self.text)
        parents = {id(child): parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for stmt in tree.body:
            if (isinstance(stmt, ast.If) and "__main__" in ast.unparse(stmt.test)
                    and "register_blueprint" in ast.unparse(stmt)):
                self.note(stmt, "the __main__ block serves the page in a bare Flask app, without IvoryOS or the "
                                f"framework's host; run it with: ivoryos-plugin run {self.target} --deck your_deck.py")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.state:
                if not self._kept_read(node, parents):
                    self.note(node, f"line {node.lineno} still reads IvoryOS's internals ({node.id}); the framework "
                                    f"has {self.var}.instruments, {self.var}.instrument(name), {self.var}.deck_busy() "
                                    f"and {self.var}.current_run().")
            elif isinstance(node, ast.Name) and node.id in self.servers and isinstance(node.ctx, ast.Load):
                self.note(node, f"line {node.lineno} still uses {node.id} (IvoryOS's Socket.IO server); use "
                                f"{self.var}.publish(event, data) to send and @{self.var}.on(event) to receive.")

    def _kept_read(self, node: ast.AST, parents: Dict[int, ast.AST]) -> bool:
        """Whether ``node`` (the global state) is in a read of the deck module's own attribute that
        was kept on purpose (and already noted): ``global_state.deck.__name__``, ``getattr(deck, "_x")``."""
        deck = parents.get(id(node))
        if not (isinstance(deck, ast.Attribute) and deck.attr == "deck"):
            return False
        above = parents.get(id(deck))
        if isinstance(above, ast.Attribute):
            return not _instrument_name(above.attr)
        if isinstance(above, ast.Call) and above.args and above.args[0] is deck and len(above.args) > 1:
            literal = _string(above.args[1])
            return literal is not None and not _instrument_name(literal)
        return False


def _instrument_name(name: str) -> bool:
    """Whether a deck global called ``name`` can be an instrument (IvoryOS's rule: not ``_private``,
    not ``Uppercase``)."""
    return bool(name) and not name.startswith("_") and not name[:1].isupper()


def _loaded(tree: ast.AST) -> Set[str]:
    """The names a module reads (``__all__``'s entries count)."""
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            found |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return found


def _bound(tree: ast.Module) -> Set[str]:
    """The names the module's top-level imports bind."""
    return {(a.asname or a.name).split(".")[0] for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names}


def _tidy(text: str, state: Set[str]) -> str:
    """Drop the imports of IvoryOS's global state and the ``socketio = None`` global once unused."""
    tree = ast.parse(text)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    edits = Edits(text)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ivoryos" and all(
                (a.asname or a.name) in state | {"GlobalConfig"} and (a.asname or a.name) not in used for a in node.names):
            edits.replace(node, "", lines=True)
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in state | {"socketio", "sio"} and node.targets[0].id not in used):
            edits.replace(node, "", lines=True)
    return re.sub(r"\n{4,}", "\n\n\n", edits.apply())


def _after_imports(tree: ast.Module) -> int:
    """The line index after the module's leading imports (after its docstring when it has none)."""
    position = 0
    for i, node in enumerate(tree.body):
        if (i == 0 and _is_doc(node)) or isinstance(node, (ast.Import, ast.ImportFrom)):
            position = int(node.end_lineno or 0)
        else:
            break
    return position


def convert_plugin_module(text: str, file: str, name: str, title: str, target: str = "",
                          renames: Optional[Dict[str, str]] = None) -> Converted:
    """Turn a template-style plugin module into a framework plugin module.

    The Blueprint becomes a ``Plugin`` (``plugin_type`` -> ``placement``; its own static route
    dropped, as the Plugin has one); ``render_template`` with ``base_exists`` becomes
    ``plugin.render``; ``init_socketio``'s handlers (``@socketio.on``, whatever the server is called
    there, ``@sio.event``, ``sio.on_event``) become ``@plugin.on`` handlers in the plugin's namespace,
    whose ``emit`` still answers the sender; ``socketio.emit`` becomes ``plugin.publish``;
    ``global_state.deck`` reads of instruments become ``plugin.instrument(name)`` /
    ``plugin.instruments``; a class patch ``Cls.method = wrapper`` of the usual shape becomes a
    ``plugin.observe`` callback installed at start; imports left unused go.

    :param text: the module's source.
    :param file: its name, for the notes.
    :param name: the new plugin name.
    :param title: the plugin's title.
    :param target: the plugin's ``module:attribute``, for the notes.
    :param renames: old Blueprint name -> new plugin name (``url_for`` endpoints).
    :raises ValueError: the module defines no module-level Blueprint."""
    module = PluginModule(text, file, name, title, renames)
    module.target = target or f"{name}.plugin:{module.var}"
    module.move_statements()
    module.change_expressions()
    return Converted(module.text, list(dict.fromkeys(module.notes)), module.events, module.placement,
                     list(dict.fromkeys(module.changes)))


def rename_endpoints(text: str, renames: Dict[str, str]) -> Tuple[str, List[str]]:
    """``url_for("old.endpoint")`` -> ``url_for("new.endpoint")`` in any Python module of the
    package; ``(new text, what changed)``.

    :param text: the module's source.
    :param renames: old Blueprint name -> new plugin name."""
    edits = Edits(text)
    changed: List[str] = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call) and _called(node) == "url_for" and node.args:
            old, dot, rest = (_string(node.args[0]) or "").partition(".")
            if dot and renames.get(old, old) != old:
                edits.replace(node.args[0], repr(f"{renames[old]}.{rest}"))
                changed.append(f"url_for('{old}.{rest}') -> url_for('{renames[old]}.{rest}')")
    return edits.apply(), changed


def serves_file(text: str, var: str, rule: str) -> bool:
    """Whether the view of ``@var.route(rule)`` in the module answers with a file (not a template):
    it calls ``send_from_directory``, ``send_file`` or ``send_static_file``.

    :param text: the (converted) module.
    :param var: the plugin's variable.
    :param rule: ``"/"`` or ``"/widget"``."""
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        routed = any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "route"
                     and isinstance(d.func.value, ast.Name) and d.func.value.id == var and d.args
                     and _string(d.args[0]) in (rule, rule.rstrip("/") or "/") for d in node.decorator_list)
        if routed and any(isinstance(c, ast.Call) and _called(c) in ("send_from_directory", "send_file", "send_static_file")
                          for c in ast.walk(node)):
            return True
    return False
