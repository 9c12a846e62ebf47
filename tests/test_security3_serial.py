"""Security round three, serial (issue 23): the serial console and ``SerialDevice`` open serial
ports only. A ``spy://`` URL (it truncates and writes the file its ``?file=`` names), ``socket://``
and ``rfc2217://`` (a TCP connection to any host), a URL with a control character, and a path that
is not a tty (a regular file, a link to one, a FIFO, a directory, ``/dev/null``) are refused before
pyserial is called: no file changes, no connection is made, and the answer is a 400 naming the
scheme (or the kind of file), the plugin and the fix. What the plugin's author allows in code
(``allow=("socket",)``) does open.

Against real ptys (the framework's echo simulator), real files and a real TCP listener on
127.0.0.1; the console through its real HTTP action, on the dev host in a subprocess, with a token
scoped to serial_console made by ``ivoryos-plugin token create``."""
from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, NamedTuple

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from support import Server, start_process
from ivoryos_plugin import SerialDevice, SerialDeviceError, open_serial
from ivoryos_plugin.sim import EchoSimulator

console_module = importlib.import_module("serial_console.plugin")  # the shipped example's module (its package
# re-exports the Plugin under the same name, so `import serial_console.plugin as m` gives the Plugin)

EXE = Path(sys.executable).with_name("ivoryos-plugin")
CONSOLE = "/ivoryos/serial_console"
CONTENT = "calibration 2026-12-01: 1.0003 g/g\n"
PAST = (1_700_000_000, 1_700_000_000)  # the victim file's mtime: any write moves it to now


class Scene(NamedTuple):
    """Everything a hostile URL may aim at."""

    pty: str          # a free simulated instrument on a real pty (nothing holds it)
    victim: Path      # a file with content and a known mtime
    link: Path        # a symlink to the victim
    fifo: Path        # a named pipe
    folder: Path      # a directory
    listener: socket.socket  # a real TCP listener on 127.0.0.1

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def fill(self, template: str) -> str:
        return template.format(pty=self.pty, victim=self.victim, link=self.link, fifo=self.fifo,
                               folder=self.folder, port=self.port)


#: id -> (URL template, what the refusal must say besides the plugin's name)
HOSTILE: Dict[str, tuple] = {
    "spy-on-a-pty-truncates-file": ("spy://{pty}?file={victim}", ["spy://", 'allow=("spy",)']),
    "spy-on-no-port-truncates-file": ("spy://x?file={victim}", ["spy://", 'allow=("spy",)']),
    "spy-raw-hexdump-writes-bytes": ("spy://{pty}?file={victim}&raw&all", ["spy://", 'allow=("spy",)']),
    "spy-upper-case": ("SPY://x?file={victim}", ["spy://", 'allow=("spy",)']),
    "socket-to-listener": ("socket://127.0.0.1:{port}", ["socket://", "TCP connection", 'allow=("socket",)']),
    "socket-by-hostname": ("socket://localhost:{port}", ["socket://", 'allow=("socket",)']),
    "rfc2217-to-listener": ("rfc2217://127.0.0.1:{port}", ["rfc2217://", 'allow=("rfc2217",)']),
    "nul-after-pty": ("{pty}\x00", ["control character", "'\\x00'"]),
    "crlf-then-socket": ("{pty}\r\nsocket://127.0.0.1:{port}", ["control character", "'\\r'"]),
    "crlf-in-spy-file": ("spy://x?file={victim}\r\n", ["control character"]),
    "regular-file": ("{victim}", ["is a regular file, not a serial port"]),
    "symlink-to-regular-file": ("{link}", ["is a regular file, not a serial port"]),
    "fifo": ("{fifo}", ["is a named pipe (FIFO), not a serial port"]),
    "directory": ("{folder}", ["is a directory, not a serial port"]),
    "dev-null": ("/dev/null", ["character device but not a serial port"]),
    "etc-passwd": ("/etc/passwd", ["is a regular file, not a serial port"]),
}
IDS = list(HOSTILE)


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    victim = tmp_path / "calibration.txt"
    victim.write_text(CONTENT)
    os.utime(victim, PAST)
    link = tmp_path / "looks-like-a-port"
    link.symlink_to(victim)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        with EchoSimulator() as sim:
            yield Scene(sim.port, victim, link, fifo, folder, listener)
    finally:
        listener.close()


def untouched(scene: Scene) -> None:
    """The victim file has its content and mtime, and nobody connected to the listener."""
    assert scene.victim.read_text() == CONTENT, "the file was written"
    assert scene.victim.stat().st_mtime_ns == PAST[1] * 10**9, "the file was opened for writing"
    assert connections(scene.listener, wait=0.3) == 0, "the listener was connected to"


def connections(listener: socket.socket, wait: float) -> int:
    """How many connections arrive at ``listener`` within ``wait`` seconds (each one closed)."""
    listener.settimeout(wait)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            return count
        conn.close()
        count += 1
        listener.settimeout(0.05)


# ------------------------------------------------------------------ the console over real HTTP
class Console(NamedTuple):
    server: Server
    token: str

    def post(self, action: str, **args: object) -> requests.Response:
        return requests.post(f"{self.server.base}{CONSOLE}/actions/{action}", json=args, timeout=60,
                             headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The dev host serving the shipped serial console, and a token scoped to serial_console."""
    folder = tmp_path_factory.mktemp("console")
    env = {k: v for k, v in os.environ.items() if k != "IVORYOS_PLUGIN_DATA"}
    made = subprocess.run([str(EXE), "token", "create", "lab-pc", "--plugin", "serial_console"], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    server = start_process([str(EXE), "run", "serial_console.plugin:plugin"], folder, "dev_host.log")
    try:
        yield Console(server, made.stdout.strip())
    finally:
        server.stop()


@pytest.mark.server
@pytest.mark.parametrize("case", IDS, ids=IDS)
def test_the_console_refuses_what_is_not_a_serial_port(console: Console, scene: Scene, case: str) -> None:
    template, says = HOSTILE[case]
    url = scene.fill(template)
    reply = console.post("connect", url=url)
    assert reply.status_code == 400, f"{url!r}: {reply.status_code} {reply.text}"
    error = reply.json()["error"]
    assert error.startswith("serial_console: cannot open "), error
    for words in says:
        assert words in error, f"{words!r} not in {error!r}"
    untouched(scene)
    assert console.post("ports").json()["status"]["open"] is False
    assert console.post("send", line="hello").status_code == 409, "a refused URL left a port open"
    assert "Traceback" not in console.server.output()


@pytest.mark.server
def test_the_scoped_token_opens_a_real_serial_port(console: Console, scene: Scene) -> None:
    """The control: the same token and route open a real pty (and loop://), so the 400s above are the check."""
    for url in (scene.pty, f"alt://{scene.pty}?class=PosixPollSerial", "loop://"):
        opened = console.post("connect", url=url)
        assert opened.status_code == 200, opened.text
        try:
            assert console.post("send", line="ECHO 7").status_code == 200
        finally:
            assert console.post("disconnect").json()["open"] is False


# ------------------------------------------------------------------ SerialDevice and open_serial directly
@pytest.mark.parametrize("case", IDS, ids=IDS)
def test_serial_device_refuses_before_pyserial_is_called(scene: Scene, case: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    template, says = HOSTILE[case]
    url = scene.fill(template)
    for opens in (True, False):  # refused at construction, even when opened later, even with reconnect=True
        with pytest.raises(SerialDeviceError, match=r"^probe: cannot open ") as refused:
            SerialDevice(url, name="probe", open=opens, reconnect=True)
        for words in says:
            assert words in str(refused.value), f"{words!r} not in {refused.value}"
    late = SerialDevice(None, name="late")  # a URL set after construction is checked at open()
    late.url = url
    with pytest.raises(SerialDeviceError, match=r"^late: cannot open "):
        late.open()
    assert not late.connected
    assert open_serial(url, timeout=1) is None
    assert any(says[0] in r.getMessage() for r in caplog.records if r.name == "ivoryos_plugin.serial")
    untouched(scene)


@pytest.mark.parametrize("url,says", [
    ("loop://?logging=debug", "reconfigure this program's logging"),
    ("hwgrep://.*&skip_busy", "opens every matching port"),
    ("cp2110://0001:0002:00", "USB HID"),
    ("nope://x", "protocol 'nope' not known"),
], ids=["loop-with-logging", "hwgrep-skip-busy", "cp2110", "unknown-scheme"])
def test_other_schemes_and_options_need_allow(url: str, says: str) -> None:
    with pytest.raises(SerialDeviceError, match=r"^probe: cannot open ") as refused:
        SerialDevice(url, name="probe", reconnect=False)
    assert says in str(refused.value)


def test_what_the_author_allows_opens(scene: Scene, tmp_path: Path) -> None:
    url = f"socket://127.0.0.1:{scene.port}"
    with pytest.raises(SerialDeviceError, match=r"socket://"):
        SerialDevice(url, reconnect=False, allow=("spy",))  # allow is per scheme
    with SerialDevice(url, reconnect=False, allow=("socket",)) as device:
        scene.listener.settimeout(5)
        conn, _ = scene.listener.accept()
        try:
            device.write("HELLO LAB")
            conn.settimeout(5)
            assert conn.recv(100) == b"HELLO LAB\r\n"
        finally:
            conn.close()
    trace = tmp_path / "trace.txt"
    with SerialDevice(f"spy://{scene.pty}?file={trace}", reconnect=False, allow=("spy",)) as device:
        assert device.query("ECHO 5") == "5"
    assert "ECHO 5" in trace.read_text(), "the spy:// the author allowed writes its trace"
    port = open_serial(url, allow=["SOCKET://"], timeout=1)  # any case, with or without ://
    assert port is not None
    port.close()


@pytest.mark.parametrize("template", ["socket://127.0.0.1:{port}\r\n", "socket://127.0.\n0.1:{port}",
                                      "socket://127.0.0.1:\t{port}"], ids=["crlf-after", "lf-inside-host", "tab"])
def test_control_characters_are_refused_even_in_an_allowed_scheme(scene: Scene, template: str) -> None:
    """Python's urlsplit drops CR, LF and TAB, so pyserial would connect to the host these URLs hide."""
    with pytest.raises(SerialDeviceError, match="control character"):
        SerialDevice(scene.fill(template), reconnect=False, allow=("socket",))
    assert open_serial(scene.fill(template), allow=("socket",)) is None
    untouched(scene)


@pytest.mark.parametrize("allow,says", [
    ("socket", "allow='socket' is one string, not a tuple of schemes; write allow=('socket',)"),
    (("sokcet",), "allow: unknown URL scheme 'sokcet'; pyserial knows alt, cp2110, hwgrep"),
], ids=["bare-string", "typo"])
def test_a_wrong_allow_is_a_value_error_at_construction(allow: object, says: str) -> None:
    with pytest.raises(ValueError, match=r"^" + says.replace("(", r"\(").replace(")", r"\)")):
        SerialDevice("loop://", allow=allow)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allow"):
        open_serial("loop://", allow=allow)  # type: ignore[arg-type]


# ------------------------------------------------------------------ the author's allow-list in the console
@pytest.fixture
def plugin() -> object:
    return console_module.plugin


def bearer(plugin_app: Flask) -> Dict[str, str]:
    token = plugin_app.extensions["ivoryos_plugin"].tokens.create("lab-pc", "serial_console")
    return {"Authorization": f"Bearer {token}"}


def test_the_console_opens_socket_once_its_author_allows_it(plugin_app: Flask, anon_client: FlaskClient,
                                                            scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = bearer(plugin_app)
    url = f"socket://127.0.0.1:{scene.port}"
    refused = anon_client.post(f"{CONSOLE}/actions/connect", json={"url": url}, headers=headers)
    assert refused.status_code == 400 and 'allow=("socket",)' in refused.get_json()["error"]
    monkeypatch.setattr(console_module, "ALLOW", ("socket",))  # what the author writes in plugin.py
    opened = anon_client.post(f"{CONSOLE}/actions/connect", json={"url": url}, headers=headers)
    assert opened.status_code == 200, opened.get_json()
    try:
        scene.listener.settimeout(5)
        conn, _ = scene.listener.accept()
        try:
            sent = anon_client.post(f"{CONSOLE}/actions/send", json={"line": "*IDN?"}, headers=headers)
            assert sent.status_code == 200, sent.get_json()
            conn.settimeout(5)
            assert conn.recv(100) == b"*IDN?\r\n"
        finally:
            conn.close()
        closed = anon_client.post(f"{CONSOLE}/actions/disconnect", json={}, headers=headers)
        assert closed.status_code == 200
        still = anon_client.post(f"{CONSOLE}/actions/connect", json={"url": f"spy://x?file={scene.victim}"},
                                 headers=headers)
        assert still.status_code == 400 and "spy://" in still.get_json()["error"]
    finally:
        anon_client.post(f"{CONSOLE}/actions/disconnect", json={}, headers=headers)
    assert scene.victim.read_text() == CONTENT


def test_the_console_page_works_with_the_simulated_deck(plugin_app: Flask, client: FlaskClient,
                                                        sim_deck: object) -> None:
    """The simulators' ptys (symlinks in a temporary folder) are serial ports: the console refuses the
    deck's own with 409 (held), not 400 (not a port); its page renders."""
    page = client.get(f"{CONSOLE}/")
    assert page.status_code == 200 and b'placeholder="/dev/ttyUSB0, /dev/ttyACM0, loop://"' in page.data
    sims: Dict[str, EchoSimulator] = sim_deck.simulators  # type: ignore[attr-defined]
    for name, sim in sims.items():
        for url in (sim.port, os.path.realpath(sim.port), f"alt://{sim.port}?class=PosixPollSerial"):
            reply = client.post(f"{CONSOLE}/actions/connect", json={"url": url})
            assert reply.status_code == 409, f"{url}: {reply.get_json()}"
            assert f"instrument '{name}'" in reply.get_json()["error"]
    assert client.post(f"{CONSOLE}/actions/connect", json={"url": "loop://"}).status_code == 200
    assert client.post(f"{CONSOLE}/actions/disconnect", json={}).status_code == 200
