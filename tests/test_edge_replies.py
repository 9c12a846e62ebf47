"""A Flask reply served on ivoryos-edge (hosts/edge/context.to_starlette) lets go of what it holds even
when its body is never read: a file a view sent (``send_file``) is closed with the Starlette reply,
once, not left open for the garbage collector to warn about (seen as a ResourceWarning in CI)."""
from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any, List

import pytest

pytest.importorskip("starlette", reason="the [edge] extra: pip install 'ivoryos-plugin-framework[edge]'")

from flask import Flask, send_file  # noqa: E402

from ivoryos_plugin.hosts.edge.context import to_starlette  # noqa: E402


def sent_file(tmp_path: Path, closes: List[int]) -> Any:
    asset = tmp_path / "balance.js"
    asset.write_text("console.log('x');\n" * 100)
    app = Flask(__name__)
    with app.test_request_context("/static/balance.js"):
        response = send_file(asset)
    response.call_on_close(lambda: closes.append(1))
    assert response.direct_passthrough
    return response


def test_a_file_reply_whose_body_is_never_read_is_closed_with_the_reply(tmp_path: Path) -> None:
    closes: List[int] = []
    response = sent_file(tmp_path, closes)
    held = response.response.file  # the open file inside Werkzeug's FileWrapper
    reply = to_starlette(response)
    assert not held.closed
    del reply, response
    gc.collect()
    assert held.closed and closes == [1]


def test_a_file_reply_read_to_the_end_is_closed_once(tmp_path: Path) -> None:
    closes: List[int] = []
    response = sent_file(tmp_path, closes)
    held = response.response.file
    reply = to_starlette(response)

    async def read() -> bytes:
        return b"".join([chunk async for chunk in reply.body_iterator])

    assert asyncio.run(read()) == (tmp_path / "balance.js").read_bytes()
    assert held.closed and closes == [1]
    del reply, response
    gc.collect()
    assert closes == [1], "closed twice"
