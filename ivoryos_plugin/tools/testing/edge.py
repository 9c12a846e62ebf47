"""``plugin_host``'s clients of a plugin on ivoryos-edge, with the calls of the Flask ones (part of the
opt-in pytest kit).

So one test body runs on both IvoryOS generations: :class:`EdgeClient` (HTTP, the Flask test client's
calls) and its :class:`EdgeReply` (the Flask test response's), and :class:`EdgeLive` (the plugin's
WebSocket live channel, with the Socket.IO ``live`` client's calls). httpx and websocket-client are
imported when a client is made (the ``[edge]`` and ``[test]`` extras)."""
from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

from ...core.clock import start_thread
from .waiting import wait_for_payloads

__all__ = ["EdgeReply", "EdgeClient", "EdgeLive"]


class EdgeReply:
    """An HTTP reply from the edge with the Flask test response's API (``status_code``, ``headers``,
    ``mimetype``, ``data``, ``get_data``, ``get_json``, ``json``), usable in ``with``.

    :param response: the httpx response."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.status_code: int = response.status_code
        self.headers = response.headers

    @property
    def mimetype(self) -> str:
        """The media type, without its parameters."""
        return str(self.headers.get("content-type", "")).split(";")[0].strip()

    @property
    def data(self) -> bytes:
        """The body."""
        return bytes(self.response.read())

    def get_data(self, as_text: bool = False) -> Any:
        """The body, as text with ``as_text``.

        :param as_text: decode it."""
        body = self.data
        return body.decode(self.response.encoding or "utf-8") if as_text else body

    def get_json(self) -> Any:
        """The body as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    @property
    def json(self) -> Any:
        """As :meth:`get_json`."""
        return self.get_json()

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives (a stream)."""
        return iter(self.response.iter_raw())

    def close(self) -> None:
        """Close the reply (a stream ends)."""
        self.response.close()

    def __enter__(self) -> "EdgeReply":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EdgeClient:
    """An HTTP client of the edge with the Flask test client's calls: ``get/post/put/patch/delete/head
    (path, json=, data=, headers=, stream=)``; a path is relative to the edge's root.

    :param base: ``http://127.0.0.1:<port>``."""

    def __init__(self, base: str) -> None:
        import httpx  # a dependency of ivoryos-edge

        self.base = base
        self.http = httpx.Client(base_url=base, timeout=30.0, follow_redirects=False)

    def open(self, method: str, path: str, *, json: Any = None, data: Any = None,
             headers: Optional[Dict[str, str]] = None, stream: bool = False) -> EdgeReply:
        """One request.

        :param method: the HTTP method.
        :param path: the URL path (with its query).
        :param json: a JSON body.
        :param data: a raw body.
        :param headers: more headers.
        :param stream: do not read the body yet (:meth:`EdgeReply.chunks`)."""
        content = data if isinstance(data, (bytes, str)) else None
        request = self.http.build_request(method, path, json=json, content=content,
                                          data=None if content is not None else data, headers=headers)
        response = self.http.send(request, stream=stream)
        return EdgeReply(response)

    def get(self, path: str, **kwargs: Any) -> EdgeReply:
        """``GET``.

        :param path: the path.
        :param kwargs: as :meth:`open`."""
        return self.open("GET", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> EdgeReply:
        """``HEAD``."""
        return self.open("HEAD", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> EdgeReply:
        """``POST``."""
        return self.open("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> EdgeReply:
        """``PUT``."""
        return self.open("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> EdgeReply:
        """``PATCH``."""
        return self.open("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> EdgeReply:
        """``DELETE``."""
        return self.open("DELETE", path, **kwargs)

    def close(self) -> None:
        """Close its connections."""
        self.http.close()


class EdgeLive:
    """The page's side of the plugin's live channel on the edge (its WebSocket), with the Socket.IO
    ``live`` client's calls: ``subscribe``, ``call``, ``received``, ``wait_for``.

    :param url: ``ws://127.0.0.1:<port>/plugins/<name>/live``."""

    def __init__(self, url: str) -> None:
        import websocket  # websocket-client, the kit's [test] extra

        self.ws = websocket.create_connection(url, timeout=10)
        self.seen: List[Dict[str, Any]] = []
        self._acks: Dict[int, Any] = {}
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._open = True
        self._reader = start_thread("test-live", self._read)  # ivoryos_plugin-test-live, a daemon
        # one round trip: what the channel replays as a page connects (the last published values) has
        # arrived once this is answered, as the Socket.IO test client has it when it is connected
        self._ask({"op": "unsubscribe", "stream": ""}, 10.0)

    def _read(self) -> None:
        while self._open:
            try:
                text = self.ws.recv()
            except Exception:
                break
            if not text:
                break
            frame = json.loads(text)
            with self._cond:
                if frame.get("type") == "ack":
                    self._acks[frame.get("id")] = frame.get("data")
                else:
                    self.seen.append(frame)
                self._cond.notify_all()
        with self._cond:
            self._open = False
            self._cond.notify_all()

    def _ask(self, message: Dict[str, Any], timeout: float) -> Any:
        ident = next(self._ids)
        self.ws.send(json.dumps({**message, "id": ident}))
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._acks:
                left = deadline - time.monotonic()
                if left <= 0 or not self._open:
                    raise AssertionError(f"no acknowledgement of {message} within {timeout} s")
                self._cond.wait(left)
            return self._acks.pop(ident)

    def call(self, event: str, data: Any = None, timeout: float = 10.0) -> Any:
        """Emit ``event`` with ``data`` to a ``@plugin.on`` handler and return its acknowledgement.

        :param event: the event.
        :param data: the payload.
        :param timeout: seconds."""
        return self._ask({"op": "emit", "event": event, "data": data}, timeout)

    def subscribe(self, stream: str, timeout: float = 10.0) -> Dict[str, Any]:
        """Subscribe to a ``@plugin.stream``; returns the acknowledgement (``{"ok": True, "hz": ...}``).

        :param stream: the stream's name.
        :param timeout: seconds."""
        return dict(self._ask({"op": "subscribe", "stream": stream}, timeout) or {})

    def received(self, event: Optional[str] = None) -> List[Any]:
        """Every payload of ``event`` received so far, in order (``None``: every event, as
        ``{"name", "args"}``).

        :param event: an event's name, or None."""
        with self._cond:
            frames = [f for f in self.seen if f.get("type") == "event"]
        if event is None:
            return [{"name": f["event"], "args": [f.get("data")]} for f in frames]
        return [f.get("data") for f in frames if f["event"] == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 5.0) -> List[Any]:
        """Wait until ``count`` payloads of ``event`` arrived; returns them all (fails after ``timeout``).

        :param event: the event.
        :param count: how many.
        :param timeout: seconds."""
        return wait_for_payloads(event, count, timeout, lambda: self.received(event),
                                 lambda: [f.get("event") or f.get("type") for f in self.seen][-20:], self._pause)

    def _pause(self, left: float) -> None:
        with self._cond:  # woken by the next frame, or after a tenth of a second
            self._cond.wait(min(left, 0.1))

    def close(self) -> None:
        """Close the WebSocket."""
        self._open = False
        try:
            self.ws.close()
        finally:
            self._reader.join(5)
