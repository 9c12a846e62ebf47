"""Werkzeug's request handler without a 10 MB buffer per request: the server ``ivoryos_plugin.run``
starts reads a request's body in pieces of at most 64 KiB.

After every response Werkzeug's development server (which ``ivoryos.run`` runs, through
Flask-SocketIO) drains what the client may still send with ``rfile.read(10_000_000)``
(``werkzeug/serving.py``), and CPython's buffered reader allocates the 10 MB it is asked for
before it reads anything, then shrinks it to what came (nothing: the client has closed). With
glibc's mmap threshold fixed at 128 KiB (:mod:`.allocator`, which keeps a long-running server's
memory steady) each such buffer is a fresh mapping, mapped and unmapped per request: about 45 µs
of the server's CPU per request, measured over HTTP on IvoryOS's status poll. :class:`PiecewiseReader`
reads the same bytes in pieces, so no buffer is larger than a piece; what a read returns is
unchanged (as many bytes as asked for, fewer only at the end of the stream).
"""
from __future__ import annotations

import io
from typing import List, Optional

from werkzeug.serving import WSGIRequestHandler

#: the largest buffer one read allocates (below glibc's mmap threshold: taken from the heap)
PIECE = 64 * 1024


class PiecewiseReader(io.BufferedReader):
    """A socket's buffered reader whose reads larger than :data:`PIECE` go in pieces.

    :param raw: the socket's raw stream (``socket.SocketIO``).
    :param buffer_size: the read buffer's size."""

    def read(self, size: Optional[int] = -1) -> Optional[bytes]:  # type: ignore[override]
        """Up to ``size`` bytes, fewer only at the end of the stream (or None when a non-blocking
        stream has nothing), as :meth:`io.BufferedReader.read`.

        :param size: how many bytes; negative or None: up to the end of the stream."""
        if size is None or size <= PIECE:
            return super().read(size)
        pieces: List[bytes] = []
        left = size
        while left > 0:
            piece = super().read(min(left, PIECE))
            if not piece:
                if piece is None and not pieces:
                    return None
                break
            pieces.append(piece)
            left -= len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class PiecewiseRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler with a :class:`PiecewiseReader` as the connection's ``rfile``."""

    def setup(self) -> None:
        """The connection's streams, as Werkzeug's handler makes them; then the reader swapped."""
        super().setup()
        buffered = self.rfile
        if type(buffered) is io.BufferedReader:  # (socket.makefile's; anything else is left alone)
            self.rfile = PiecewiseReader(buffered.detach(), io.DEFAULT_BUFFER_SIZE)
