"""What IvoryOS's workflows call: steps (``@plugin.step``) and cameras (``plugin.camera``, whose
``snapshot`` is a step), and what a running step asks (``step_cancelled``, ``current_run``)."""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Union, overload

from . import names
from .base import F, PluginBase
from .declarations import Builtin
from .names import PluginError
from .setup import setupmethod
from .specs import DEFAULT_STEP_TIMEOUT, PHOTO_KEEP_BYTES, PHOTO_KEEP_S, STEP_CANCELLED, make_camera, make_step

__all__ = ["WorkflowMixin"]


class WorkflowMixin(PluginBase):
    """The decorators of :class:`~ivoryos_plugin.core.plugin.Plugin` for IvoryOS's workflows."""

    @overload
    def step(self, func: F) -> F: ...

    @overload
    def step(self, *, name: Optional[str] = None, timeout: float = DEFAULT_STEP_TIMEOUT) -> Callable[[F], F]: ...

    @setupmethod
    def step(self, func: Optional[F] = None, *, name: Optional[str] = None,
             timeout: float = DEFAULT_STEP_TIMEOUT) -> Union[F, Callable[[F], F]]:
        """Offer ``func`` as a workflow step: a method of the instrument named after the plugin in
        IvoryOS's designer, Instruments page and API schema, with its type hints and docstring.

        It runs like a deck instrument's method: inside IvoryOS's runner (hardware actions get 409
        meanwhile), seen by ``observe``, its return value kept in the run's records, an exception
        pausing the run for IvoryOS's retry. ``plugin.current_run()`` tells it which run and step it is
        in. In the dev host the steps are listed at ``/ivoryos/<plugin>/steps`` and callable there.

        Every call, whoever makes it (IvoryOS's runner, its single-step API, a deck script, the
        steps route), is validated against the signature first, as an action's JSON is (lax: the
        text ``"5"`` is taken for an ``int``, ``"abc"`` is not; NaN and Infinity are refused): a bad
        argument fails the call with an error naming the plugin, the step and the field, and the
        step does not run. The step then runs in a thread of its own; a call that has waited
        ``timeout`` seconds fails with :class:`TimeoutError` and frees the deck. Python cannot stop
        a thread: the step keeps running until it returns (``plugin.step_cancelled()`` turns true
        in it, so a loop can stop early), and its result is dropped; until then a new call of that
        step is refused.

        :param func: the function (when used without parentheses).
        :param name: the method's name (defaults to the function's name).
        :param timeout: the most seconds a call waits for the step: positive and finite, at most
            seven days; one hour when not given. Checked here: a bad value raises
            :class:`PluginError`.

        Example::

            @plugin.step(timeout=90)
            def wait_until_stable(timeout_s: float = 30.0, tolerance_g: float = 0.002) -> float:
                '''Wait until the balance reading is stable; returns the stable weight.'''
                ...
        """
        def decorate(f: F) -> F:
            names.check_instrument_name(self.name, self.steps_instrument)
            spec = make_step(self.name, f, name, timeout)
            if spec.name in self._steps:
                raise PluginError(self.name, f"step {spec.name!r} is registered twice; pass name= to tell them apart.")
            self._steps[spec.name] = spec
            self._declarations = None
            return f

        return decorate(func) if func is not None else decorate

    def step_cancelled(self) -> bool:
        """Whether the call running this step has given up (its ``timeout`` passed): the step's
        result will be dropped, so a loop in a step can check it and return early. False outside a
        step, and in a step whose call still waits.

        Example::

            while not plugin.step_cancelled():
                if balance.read()["stable"]:
                    return balance.read()["grams"]
                time.sleep(0.05)
        """
        event = STEP_CANCELLED.get()
        return event is not None and event.is_set()

    @setupmethod
    def camera(self, name: str, source: Union[int, str, Callable[[], Any]], *, fps: float = 15.0,
               width: Optional[int] = None, quality: int = 80, keep_s: Optional[float] = PHOTO_KEEP_S,
               keep_bytes: Optional[int] = PHOTO_KEEP_BYTES) -> None:
        """Declare a camera: live video for every viewer from one capture, and snapshots as a step.

        One capture thread per camera (per app), shared by all viewers and running only while
        someone watches; each frame is JPEG-encoded once. Served at
        ``/ivoryos/<plugin>/cameras/<name>/stream.mjpg`` (an ``<img>`` shows it; the page helper
        ``IvoryPlugin.camera(img, url)`` adds reconnect, a "no signal" placeholder and the fps) and
        ``.../snapshot.jpg``, with the same login as every plugin route. The plugin gains the workflow
        step ``snapshot(label)``: its photos are kept under the run in the plugin's data folder and
        listed on ``/ivoryos/<plugin>/gallery``, each camera's for ``keep_s`` seconds and up to
        ``keep_bytes`` bytes (the oldest are removed first, after each snapshot and every minute in
        the background; the newest photo is always kept). Needs OpenCV (``opencv-python-headless``).

        :param name: the camera's name (a Python identifier).
        :param source: a device index (0), a device path, an RTSP/HTTP URL or a video file, or a
            function returning a frame (numpy BGR array, PIL image or JPEG bytes); it runs in the
            capture thread, so it must not block for long.
        :param fps: frames per second while someone watches, up to 60.
        :param width: scale frames to this width (None keeps the source's).
        :param quality: JPEG quality, 1-100.
        :param keep_s: photos older than this many seconds are removed (default 30 days; None: no
            age limit).
        :param keep_bytes: at most this many bytes of photos are kept (default 2 GiB; None: no size
            limit).

        Example::

            plugin.camera("deck", 0, fps=10, width=640, keep_s=7 * 86400, keep_bytes=500 * 1024 ** 2)
        """
        spec = make_camera(self.name, name, source, fps=fps, width=width, quality=quality, keep_s=keep_s,
                           keep_bytes=keep_bytes)
        if name in self._cameras:
            raise PluginError(self.name, f"camera {name!r} is registered twice; give each camera its own name.")
        first = not self._cameras
        self._cameras[name] = spec
        self._declarations = None
        if not first:
            return

        self._builtin(Builtin.CAMERA_STREAM, "/cameras/<camera>/stream.mjpg")
        self._builtin(Builtin.CAMERA_SNAPSHOT, "/cameras/<camera>/snapshot.jpg")
        self._builtin(Builtin.GALLERY, "/gallery")
        self._builtin(Builtin.GALLERY_FILE, "/gallery/<path:filename>")

        def snapshot(label: str = "snapshot", camera: str = name) -> Dict[str, Any]:
            """Take a photo with the camera and keep it under the current workflow run; returns the
            file's name and URL on the plugin's gallery page."""
            return self.runtime.snapshot(camera, label)

        self.step(snapshot)

    def current_run(self) -> Optional[Dict[str, Any]]:
        """The IvoryOS workflow run in progress: ``{"run_id", "run_name", "phase", "step", "iteration"}``,
        or None outside a run (and in the dev host). A step files what it makes under ``run_id``."""
        return self.runtime.current_run()

