"""What a plugin's pages and clients call: actions (``@plugin.action``), live streams
(``@plugin.stream``) and Socket.IO handlers (``@plugin.on``), declared at import time."""
from __future__ import annotations

from typing import Callable, Optional, Union, overload

from .base import F, PluginBase
from .declarations import Builtin
from .names import PluginError
from .setup import setupmethod
from .specs import StreamSpec, make_action

__all__ = ["InterfaceMixin"]


class InterfaceMixin(PluginBase):
    """The decorators of :class:`~ivoryos_plugin.core.plugin.Plugin` for what pages call."""

    @overload
    def action(self, func: F) -> F: ...

    @overload
    def action(self, *, hardware: bool = True, public: bool = False,
               name: Optional[str] = None) -> Callable[[F], F]: ...

    @setupmethod
    def action(self, func: Optional[F] = None, *, hardware: bool = True, public: bool = False,
               name: Optional[str] = None) -> Union[F, Callable[[F], F]]:
        """Expose ``func`` as ``POST /ivoryos/<plugin>/actions/<name>`` (JSON in, JSON out).

        Arguments are validated from the signature's annotations (bad input: 400 with per-field
        errors; the function does not run). A hardware action runs only while IvoryOS's runner is
        free (409 otherwise). Runs in the request's thread: keep it short.

        :param func: the function (when used without parentheses).
        :param hardware: refuse with 409 while a workflow or single step holds the deck.
        :param public: serve without login (a caller logged in with a session still sends the CSRF token).
        :param name: the URL name (defaults to the function's name).

        Example::

            @plugin.action
            def tare(settle_s: float = 0.0):
                plugin.instrument("balance").tare()
                return {"ok": True}
        """
        def decorate(f: F) -> F:
            spec = make_action(self.name, f, hardware=hardware, public=public, name=name)
            if spec.name in self._actions:
                raise PluginError(self.name, f"action {spec.name!r} is registered twice; "
                                             "pass name= to tell them apart.")
            self._actions[spec.name] = spec
            self._builtin_fixed(Builtin.ACTION, f"/actions/{spec.name}", "name", spec.name)
            self._declarations = None
            return f

        return decorate(func) if func is not None else decorate

    @setupmethod
    def stream(self, name: str, *, hz: Union[float, Callable[[], float]] = 1.0, record: Union[bool, str] = False,
               keep_s: Optional[float] = 7 * 86400.0, keep_rows: Optional[int] = 1_000_000) -> Callable[[F], F]:
        """Declare a live stream: one producer for all viewers, run only while someone watches.

        The producer is called ``hz`` times a second (a number, or a callable read every tick) in a
        background thread while at least one client is subscribed; its return value (JSON) is sent
        to every subscriber as the event ``name``. A producer that raises sends ``stream_error`` and
        backs off. It must not block for long: a slow producer lowers the rate, never piles up.

        With ``record`` the stream samples even with no viewer, at its own rate (the instrument is
        read ``hz`` times a second all the time; the health page says so), and every value is kept in
        the history database with its time and the IvoryOS run and step it was taken in, readable at
        ``/ivoryos/<plugin>/history/<name>`` (JSON, ``.csv``) and by ``live.history(name)`` on a page.

        :param name: the stream's (and the client event's) name.
        :param hz: ticks per second, or a callable returning it.
        :param record: True to record, or the key of a dict value to downsample (``"grams"``).
        :param keep_s: recorded values older than this many seconds are deleted (None: no limit).
        :param keep_rows: at most this many recorded values are kept, the newest (None: no limit).

        Example::

            @plugin.stream("weight", hz=5, record=True)
            def weight():
                return {"value": plugin.instrument("balance").weigh()}
        """
        def decorate(f: F) -> F:
            if name in self._streams:
                raise PluginError(self.name, f"stream {name!r} is registered twice; "
                                             "pass name= to tell them apart.")
            if not callable(hz) and not (isinstance(hz, (int, float)) and 0 < hz <= 1000):
                raise PluginError(self.name, f"stream {name!r}: hz={hz!r} must be a number in (0, 1000] "
                                             "or a callable returning one.")
            if not isinstance(record, (bool, str)) or (isinstance(record, str) and not record):
                raise PluginError(self.name, f"stream {name!r}: record={record!r} must be True, False or the key "
                                             "of the value to downsample, e.g. record='grams'.")
            for label, limit in (("keep_s", keep_s), ("keep_rows", keep_rows)):
                if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
                    raise PluginError(self.name, f"stream {name!r}: {label}={limit!r} must be a positive number or None.")
            self._streams[name] = StreamSpec(name=name, func=f, hz=hz, record=record, keep_s=keep_s,
                                             keep_rows=int(keep_rows) if keep_rows is not None else None)
            self._declarations = None
            return f

        return decorate

    @setupmethod
    def on(self, event: str) -> Callable[[F], F]:
        """Handle the Socket.IO ``event`` in the plugin's own namespace (authenticated clients only).

        The handler receives the payload; its return value is the ack. It runs in the server's
        thread for that client: keep it short.

        :param event: the event's name (``connect``/``disconnect``/``subscribe`` are the framework's).

        Example::

            @plugin.on("ping")
            def ping(data):
                return {"pong": data}
        """
        def decorate(f: F) -> F:
            if event in ("connect", "disconnect", "subscribe", "unsubscribe"):
                raise PluginError(self.name, f"event {event!r} is handled by the framework; "
                                             "use @plugin.on_start or another event name.")
            if event in self._handlers:
                raise PluginError(self.name, f"event {event!r} has two handlers; keep one.")
            self._handlers[event] = f
            self._declarations = None
            return f

        return decorate

