"""Keep the docs' code equal to the code the tests run.

A code block in docs/*.md (or README.md) preceded by a marker line

    <!-- snippet: examples/hello/hello_plugin/plugin.py -->            the whole file
    <!-- snippet: examples/serial_console/serial_console/plugin.py::connect -->   one top-level
                                                                        def/class (with decorators)

must hold exactly that code. ``python scripts/docs_snippets.py`` rewrites the blocks from the
files; ``--check`` lists the blocks that differ (the test suite runs the check).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- snippet: (?P<path>[^ :]+)(?:::(?P<name>\w+))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)```",
                    re.S)


def extract(path: str, name: str = "") -> str:
    """The text of ``path`` (relative to the repo), or of its top-level ``name`` with decorators."""
    source = (ROOT / path).read_text(encoding="utf-8")
    if not name:
        return source
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    for node in tree.body:
        if getattr(node, "name", None) == name:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            return "".join(lines[start - 1:node.end_lineno])
    raise LookupError(f"{path} has no top-level {name!r}")


def blocks(doc: Path) -> List[Tuple[str, str, str]]:
    """Each marked block of ``doc``: (path, name, body)."""
    return [(m["path"], m["name"] or "", m["body"]) for m in MARKER.finditer(doc.read_text(encoding="utf-8"))]


def documents() -> List[Path]:
    """The markdown files whose snippets are checked."""
    return sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "BENCHMARKS.md"]


def sync(doc: Path) -> bool:
    """Rewrite the marked blocks of ``doc``; True if it changed."""
    text = doc.read_text(encoding="utf-8")

    new = MARKER.sub(lambda m: f"<!-- snippet: {m['path']}{'::' + m['name'] if m['name'] else ''} -->\n```{m['lang']}\n"
                     f"{_ending(extract(m['path'], m['name'] or ''))}```", text)
    if new != text:
        doc.write_text(new, encoding="utf-8")
        return True
    return False


def _ending(body: str) -> str:
    return body if body.endswith("\n") else body + "\n"


def stale() -> List[str]:
    """Descriptions of the blocks that differ from their files."""
    problems = []
    for doc in documents():
        if not doc.exists():
            continue
        for path, name, body in blocks(doc):
            try:
                want = _ending(extract(path, name))
            except (OSError, LookupError) as exc:
                problems.append(f"{doc.name}: {path}::{name}: {exc}")
                continue
            if body != want:
                problems.append(f"{doc.name}: the block from {path}{'::' + name if name else ''} is stale")
    return problems


if __name__ == "__main__":
    if "--check" in sys.argv:
        found = stale()
        print("\n".join(found) or "docs are in sync")
        sys.exit(1 if found else 0)
    for document in documents():
        if document.exists() and sync(document):
            print(f"updated {document.relative_to(ROOT)}")
