"""``run_demo`` takes the two meanings of its old ``host=`` apart (issue 25, one meaning per word):
``bind=`` is the address to listen on, ``edge=True`` the host that serves; ``host=`` still works for
one release with a DeprecationWarning. Checked where the demo stops first, on a port that is taken
(nothing starts), in a fresh interpreter (IvoryOS not imported: the demo runs in this process)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from support import ROOT

SCRIPT = r'''
import json, sys, warnings
from ivoryos_plugin.tools.demo import DemoError, run_demo

port, found = int(sys.argv[1]), {}
for name, call in [("bind", lambda: run_demo(bind="127.0.0.1", port=port, open_browser=False)),
                   ("positional", lambda: run_demo("127.0.0.1", port, False)),
                   ("host", lambda: run_demo(host="localhost", port=port, open_browser=False))]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            call()
            error = "no error"
        except DemoError as exc:
            error = str(exc)
    found[name] = {"error": error, "warnings": [f"{w.category.__name__}: {w.message}" for w in caught
                                                if issubclass(w.category, DeprecationWarning)]}
print("FOUND " + json.dumps(found))
'''


def test_run_demo_binds_with_bind_and_still_takes_host_with_a_deprecation_warning(tmp_path: Path) -> None:
    script = tmp_path / "demo_words.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "IVORYOS_ACTIVE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # every address of this machine, 127.0.0.1 and localhost among them
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, str(script), str(port)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith("FOUND ")]
    assert lines, done.stdout + done.stderr
    found = json.loads(lines[-1][len("FOUND "):])
    for name, address in (("bind", "127.0.0.1"), ("positional", "127.0.0.1"), ("host", "localhost")):
        assert found[name]["error"].startswith(f"cannot listen on {address}:{port}:"), found  # the address given
    assert found["bind"]["warnings"] == [] and found["positional"]["warnings"] == [], found
    assert len(found["host"]["warnings"]) == 1 and "run_demo(bind=...)" in found["host"]["warnings"][0], found
    assert "run_demo(edge=True)" in found["host"]["warnings"][0], found
