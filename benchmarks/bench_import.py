"""Start-up cost: ``from ivoryos_plugin import Plugin`` against ``import flask``, and
``ivoryos-plugin --help`` against ``flask --help``, each in fresh interpreters, interleaved.

Targets: both medians within 2x of their anchors (the package is lazy: importing it loads no host,
serial, redis or IvoryOS; the CLI imports its commands' modules only when they run)."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from common import figure, finish, median

ROUNDS = 25
BIN = Path(sys.executable).parent
CASES = {
    "plugin_import": [sys.executable, "-c", "from ivoryos_plugin import Plugin"],
    "flask_import": [sys.executable, "-c", "import flask"],
    "cli_help": [str(BIN / "ivoryos-plugin"), "--help"],
    "flask_help": [str(BIN / "flask"), "--help"],
}


def once(argv: List[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return elapsed


def main() -> None:
    times: Dict[str, List[float]] = {name: [] for name in CASES}
    for name, argv in CASES.items():  # warm the OS file cache once for each
        once(argv)
    for _ in range(ROUNDS):  # interleaved: each round runs every case once
        for name, argv in CASES.items():
            times[name].append(once(argv))
    m = {name: median(values) for name, values in times.items()}
    print(", ".join(f"{name} {value * 1000:.1f} ms" for name, value in m.items()))
    figure("import_plugin_vs_flask_ratio", m["plugin_import"] / m["flask_import"], "<=2.0")
    figure("cli_help_vs_flask_help_ratio", m["cli_help"] / m["flask_help"], "<=2.0")
    finish()


if __name__ == "__main__":
    main()
