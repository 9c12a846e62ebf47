"""What ``ivoryos-plugin migrate`` does to Python sources: pure text in, text out (no I/O). Each
change is made at the positions :mod:`ast` reports, in two passes over the plugin module: first
the statements move (``init_socketio``'s handlers, class patches), then the expressions change on
the re-parsed text. What it cannot convert is returned as a note (``file:line: what to do``)."""
from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

#: what IvoryOS's connection events become: the framework authenticates its namespaces itself
_CONNECTION_EVENTS = ("connect", "disconnect")
_DOCS = "docs/migration.md"


@dataclass
class Converted:
    """The result of converting one module.

    :param text: the new source.
    :param notes: what could not be converted, one line each (``file:line: ...``).
    :param events: the Socket.IO events now handled in the plugin's namespace.
    :param placement: ``"tab"``, or ``"left_panel"`` when the Blueprint's ``plugin_type`` said so."""

    text: str
    notes: List[str] = field(default_factory=list)
    events: List[str] = field(default_factory=list)
    placement: str = "tab"


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


def _is_doc(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _on_event(stmt: ast.stmt, receivers: Set[str]) -> Optional[str]:
    """The event of a ``@socketio.on("event")`` handler (``receivers``: the server's names)."""
    for deco in getattr(stmt, "decorator_list", []):
        if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr in ("on", "event")
                and isinstance(deco.func.value, ast.Name) and deco.func.value.id in receivers and deco.args
                and isinstance(deco.args[0], ast.Constant) and isinstance(deco.args[0].value, str)):
            return deco.args[0].value
    return None


class PluginModule:
    """The conversion of the module that defines the plugin's Blueprint.

    :param text: the module's source.
    :param file: its name, for the notes.
    :param name: the new plugin name.
    :param title: the plugin's title."""

    def __init__(self, text: str, file: str, name: str, title: str) -> None:
        self.file, self.name, self.title = file, name, title
        self.notes: List[str] = []
        self.events: List[str] = []
        tree = ast.parse(text)
        found = find_blueprint(tree)
        if found is None:
            raise ValueError(f"{file} defines no module-level Blueprint")
        self.var = found[0]
        self.state = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                      and (n.module or "").split(".")[0] == "ivoryos" for a in n.names if a.name == "global_state"}
        self.state |= {t.id for n in tree.body if isinstance(n, ast.Assign) and _called(n.value) == "GlobalConfig"
                       for t in n.targets if isinstance(t, ast.Name)}
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

    def _hoist(self, func: ast.FunctionDef, edits: Edits) -> str:
        server = func.args.args[0].arg if func.args.args else "socketio"
        out: List[str] = []
        for stmt in func.body:
            if isinstance(stmt, (ast.Global, ast.Pass)) or _is_doc(stmt) or (
                    isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Name) and stmt.value.id == server):
                continue
            event = _on_event(stmt, {server, "socketio"})
            if not isinstance(stmt, ast.FunctionDef) or event is None:
                self.note(stmt, "a statement of init_socketio that is not a @socketio.on handler was left out; "
                                       "put it in an @plugin.on_start function.")
                continue
            body = [s for s in stmt.body if not _is_doc(s)]
            code = "".join(line for line in textwrap.dedent(self.text[slice(*edits.span(stmt, lines=True))])
                           .splitlines(keepends=True) if not line.lstrip().startswith("@"))
            if event in _CONNECTION_EVENTS:
                if all(isinstance(s, ast.Pass) for s in body):
                    continue
                self.note(stmt, f"the {event!r} handler is now a plain function: the framework authenticates "
                                       "connections to the plugin's namespace itself; send what it sends with "
                                       "plugin.publish (replayed to pages that connect later).")
                out.append("\n\n" + code)
                continue
            self.events.append(event)
            out.append(f"\n\n@{self.var}.on({event!r})\n{code}")
        return "".join(out).lstrip("\n") + ("\n" if out else "")

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
        """The Blueprint, ``render_template``, ``emit``, deck reads; then tidy and import ``Plugin``."""
        tree = ast.parse(self.text)
        edits = Edits(self.text)
        placement = self.placement = self._blueprint_statements(tree, edits)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["base_exists"]:
                edits.replace(node, "", lines=True)
            elif isinstance(node, ast.Call) and _called(node) == "render_template" and isinstance(node.func, ast.Name):
                edits.replace(node.func, f"{self.var}.render")
                self._drop_keywords(node, edits, {"base_exists"})
            elif isinstance(node, ast.Call) and self._is_emit(node):
                self._publish(node, edits)
        found = find_blueprint(tree)
        assert found is not None
        call = found[1]
        kept = [edits.source(k) for k in call.keywords if k.arg not in (None, "name", "import_name", "url_prefix")]
        args = [repr(self.name), "__name__", f"title={self.title!r}"] + (
            ['placement="left_panel"'] if placement == "left_panel" else []) + kept
        edits.replace(call, f"Plugin({', '.join(args)})")
        self._deck(tree, edits)
        self.text = _tidy(edits.apply(), self.state)
        lines = self.text.splitlines(keepends=True)
        lines.insert(_after_imports(ast.parse(self.text)), "from ivoryos_plugin import Plugin\n")
        self.text = "".join(lines)
        self._leftovers()

    def _blueprint_statements(self, tree: ast.Module, edits: Edits) -> str:
        placement = "tab"
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
                continue
            target, value = node.targets[0], node.value
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == self.var:
                if target.attr == "plugin_type":
                    placement = "left_panel" if isinstance(value, ast.Constant) and value.value == "left_panel" else "tab"
                    edits.replace(node, "", lines=True)
                elif target.attr == "init_socketio":
                    edits.replace(node, "", lines=True)
        return placement

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

    @staticmethod
    def _is_emit(node: ast.Call) -> bool:
        func = node.func
        return (isinstance(func, ast.Name) and func.id == "emit") or (
            isinstance(func, ast.Attribute) and func.attr == "emit" and isinstance(func.value, ast.Name)
            and func.value.id in ("socketio", "sio"))

    def _publish(self, node: ast.Call, edits: Edits) -> None:
        extra = {k.arg for k in node.keywords if k.arg is not None}
        if isinstance(node.func, ast.Name):
            self.note(node, f"emit() answered only the page that sent the event; {self.var}.publish sends to every "
                            "page of the plugin (return a value from the handler to answer the sender only).")
        if extra - {"namespace"} or len(node.args) > 2:
            self.note(node, f"emit(...) with {sorted(extra - {'namespace'}) or 'more arguments'}: now "
                                   f"{self.var}.publish(event, data), which reaches every page of the plugin.")
        edits.replace(node.func, f"{self.var}.publish")
        self._drop_keywords(node, edits, extra)

    def _deck(self, tree: ast.Module, edits: Edits) -> None:
        """``global_state.deck`` reads (and a local ``deck = global_state.deck``) -> the plugin's instruments."""
        for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            aliases = [s for s in ast.walk(func) if isinstance(s, ast.Assign) and len(s.targets) == 1
                       and isinstance(s.targets[0], ast.Name) and self._deck_of(s.value)]
            for alias in aliases:
                name = alias.targets[0].id  # type: ignore[attr-defined]
                uses = [n for n in ast.walk(func) if isinstance(n, ast.Name) and n.id == name and n is not alias.targets[0]]
                marks = len(edits.edits)
                for node in ast.walk(func):
                    self._deck_read(node, edits, name)
                new = edits.edits[marks:]
                if all(any(s <= edits.span(u)[0] < e for s, e, _ in new) for u in uses):
                    edits.replace(alias, "", lines=True)
                else:
                    del edits.edits[marks:]
                    self.note(alias, f"`{name} = ...deck` is used in ways migrate does not convert; use "
                                            f"{self.var}.instruments (name -> instrument) instead of the deck module.")
        for node in ast.walk(tree):
            self._deck_read(node, edits, None)

    def _deck_of(self, node: ast.AST, alias: Optional[str] = None) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "deck" and isinstance(node.value, ast.Name):
            return node.value.id in self.state
        return alias is not None and isinstance(node, ast.Name) and node.id == alias

    def _deck_read(self, node: ast.AST, edits: Edits, alias: Optional[str]) -> None:
        v = self.var
        if isinstance(node, ast.Attribute) and self._deck_of(node.value, alias):
            edits.replace(node, f"{v}.instrument({node.attr!r})")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args
              and self._deck_of(node.args[0], alias)):
            rest = [edits.source(a) for a in node.args[1:]]
            new = {("getattr", 1): f"{v}.instrument({', '.join(rest)})",
                   ("getattr", 2): f"{v}.instruments.get({', '.join(rest)})",
                   ("hasattr", 1): f"({''.join(rest)} in {v}.instruments)",
                   ("vars", 0): f"{v}.instruments", ("dir", 0): f"list({v}.instruments)"}.get((node.func.id, len(rest)))
            if new is not None:
                edits.replace(node, new)
        elif (isinstance(node, ast.Compare) and len(node.ops) == 1 and self._deck_of(node.left, alias)
              and isinstance(node.comparators[0], ast.Constant) and node.comparators[0].value is None):
            edits.replace(node, f"not {v}.instruments" if isinstance(node.ops[0], ast.Is) else f"bool({v}.instruments)")

    def _leftovers(self) -> None:
        tree = ast.parse(self.text)
        for stmt in tree.body:
            if (isinstance(stmt, ast.If) and "__main__" in ast.unparse(stmt.test)
                    and "register_blueprint" in ast.unparse(stmt)):
                self.note(stmt, "the __main__ block serves the page in a bare Flask app, without IvoryOS or the "
                                f"framework's host; run it with: ivoryos-plugin run {self.target} --deck your_deck.py")
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in self.state:
                self.note(node, f"line {node.lineno} still reads IvoryOS's internals ({node.id}); the framework has "
                                f"{self.var}.instruments, {self.var}.instrument(name), {self.var}.deck_busy() "
                                f"and {self.var}.current_run().")
            elif isinstance(node, ast.Name) and node.id in ("socketio", "sio") and isinstance(node.ctx, ast.Load):
                self.note(node, f"line {node.lineno} still uses {node.id} (IvoryOS's Socket.IO server); use "
                                f"{self.var}.publish(event, data) to send and @{self.var}.on(event) to receive.")


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
              and node.targets[0].id in state | {"socketio"} and node.targets[0].id not in used):
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


def convert_plugin_module(text: str, file: str, name: str, title: str, target: str = "") -> Converted:
    """Turn a template-style plugin module into a framework plugin module.

    The Blueprint becomes a ``Plugin`` (``plugin_type`` -> ``placement``); ``render_template`` with
    ``base_exists`` becomes ``plugin.render``; ``init_socketio``'s ``@socketio.on`` handlers become
    ``@plugin.on`` handlers in the plugin's namespace and ``emit``/``socketio.emit`` become
    ``plugin.publish``; ``global_state.deck`` reads become ``plugin.instrument(name)`` /
    ``plugin.instruments``; a class patch ``Cls.method = wrapper`` of the usual shape becomes a
    ``plugin.observe`` callback installed at start.

    :param text: the module's source.
    :param file: its name, for the notes.
    :param name: the new plugin name.
    :param title: the plugin's title.
    :param target: the plugin's ``module:attribute``, for the notes.
    :raises ValueError: the module defines no module-level Blueprint."""
    module = PluginModule(text, file, name, title)
    module.target = target or f"{name}.plugin:{module.var}"
    module.move_statements()
    module.change_expressions()
    return Converted(module.text, list(dict.fromkeys(module.notes)), module.events, module.placement)
