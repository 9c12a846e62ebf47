"""A web terminal for a serial port: pick a port (or type its path, or loop:// to try the page), set
baud and line end, send lines, watch received lines live, download the session's log. A port that a
deck instrument holds is refused whatever URL names it (the framework's port registry knows the real
device), and connect and send are hardware actions: refused while a workflow runs, so the console
never talks over the workflow. Whoever may use the page opens serial ports only: no file, no host
(see ``ALLOW``)."""
import re
import threading
import time
from typing import Any, Dict, Literal, Optional, Tuple

from flask import send_from_directory

from ivoryos_plugin import ActionError, Plugin, SerialDevice, SerialDeviceError

from .ports import available_ports

plugin = Plugin("serial_console", __name__, title="Serial console", version="1.0.0",
                description="A terminal for any serial port, with a downloadable session log.")

TERMINATORS = {"CRLF": b"\r\n", "LF": b"\n", "CR": b"\r"}
#: pyserial URL schemes the console opens besides serial ports (tty device paths) and loop://: none,
#: so a user of the page reaches no file (spy://) and no host (socket://, rfc2217://). A lab whose
#: instrument sits behind a serial-to-Ethernet adapter writes ("socket",) here: in code, never in a
#: setting that the page itself could change.
ALLOW: Tuple[str, ...] = ()
_state: Dict[str, Any] = {"device": None, "url": None, "log": None}
_lock = threading.Lock()


def _log(direction: str, line: str) -> None:
    path = _state["log"]
    if path is not None:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {direction} {line}\n")


def _received(line: str) -> None:
    _log("<<", line)
    plugin.publish("rx", {"line": line, "t": time.time()})


def _status() -> Dict[str, Any]:
    device: Optional[SerialDevice] = _state["device"]
    log = _state["log"]
    return {"open": device is not None, "url": _state["url"],
            "connected": bool(device is not None and device.connected),
            "log": log.name if log is not None else None}


@plugin.route("/")
def main():
    return plugin.render("serial_console.html", ports=available_ports(), status=_status())


@plugin.route("/sessions/<name>")
def session_log(name: str):
    return send_from_directory(plugin.data_dir / "sessions", name, as_attachment=True, mimetype="text/plain")


@plugin.action(hardware=False)
def ports() -> dict:
    return {"ports": available_ports(), "status": _status()}


@plugin.action  # a hardware action: refused (409) while a workflow runs
def connect(url: str, baudrate: int = 9600, terminator: Literal["CRLF", "LF", "CR"] = "CRLF") -> dict:
    with _lock:
        if _state["device"] is not None:
            raise ActionError(f"{_state['url']} is open; close it first.", status=409)
        try:  # opened here, not at construction, so that a port that is not there is a 400 at once
            device = SerialDevice(url, baudrate=baudrate, terminator=TERMINATORS[terminator], on_line=_received,
                                  name="serial_console", open=False, allow=ALLOW)  # another scheme: a 400
            device.open()
        except SerialDeviceError as exc:
            if exc.holder is not None:  # the same device, under whatever URL, is open elsewhere in IvoryOS
                raise ActionError(f"{url} is the port of {exc.holder}; the console will not talk over it. "
                                  "Pick another port.", status=409) from None
            raise ActionError(str(exc), status=400) from None
        folder = plugin.data_dir / "sessions"
        folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9]+", "_", url).strip("_")[-40:]
        _state.update(device=device, url=url, log=folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}.log")
        _log("--", f"opened {url} at {baudrate} baud")
    plugin.publish("state", _status())
    return _status()


@plugin.action  # a hardware action: refused (409) while a workflow runs
def send(line: str) -> dict:
    device: Optional[SerialDevice] = _state["device"]
    if device is None:
        raise ActionError("no port is open; open one first.", status=409)
    try:
        device.write(line)
    except SerialDeviceError as exc:
        raise ActionError(str(exc), status=503) from None
    _log(">>", line)
    return {"sent": line}


@plugin.action(hardware=False)
def disconnect() -> dict:
    with _lock:
        device: Optional[SerialDevice] = _state["device"]
        if device is not None:
            device.close()
            _log("--", "closed")
        _state.update(device=None, url=None)
    plugin.publish("state", _status())
    return _status()


@plugin.on_stop
def close_port() -> None:
    device = _state["device"]
    if device is not None:
        device.close()
