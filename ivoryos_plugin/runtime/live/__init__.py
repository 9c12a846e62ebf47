"""Live events, whatever carries them: one hub per plugin runtime (:class:`LiveHub`) with its
stream producers (:class:`Stream`: one producer per stream for all viewers, running only while
someone watches, or always when recorded), ``publish`` with last-value replay and the dispatch of
``@plugin.on`` handlers, behind a small :class:`Transport` protocol.

The transport belongs to the host: Flask-SocketIO's binding is
:mod:`ivoryos_plugin.hosts.socketio_live` (no module of this layer imports Socket.IO; an
import contract checks it)."""
from __future__ import annotations

from .hub import LiveHub
from .streams import Recorder, RecorderFactory, Stream
from .transport import FRAMEWORK_EVENTS, LiveServer, NullTransport, StartTask, Task, Transport, start_thread

__all__ = ["FRAMEWORK_EVENTS", "LiveHub", "LiveServer", "NullTransport", "Recorder", "RecorderFactory", "StartTask",
           "Stream", "Task", "Transport", "start_thread"]
