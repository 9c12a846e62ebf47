"""``python -m benchmarks``: run every benchmarks/bench_*.py in turn and summarise the FIGURE lines.

Each benchmark runs in its own process (they start servers and ptys); the exit status is 1 when
any figure missed its target or a benchmark failed."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run the benchmarks named on the command line (default: all) and print their figures."""
    # bench_soak runs for --minutes (30 by default): only when named (python -m benchmarks soak)
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("bench_*.py") if p.stem != "bench_soak")
    figures, failed = [], []
    for name in names:
        script = HERE / f"{name if name.startswith('bench_') else 'bench_' + name}.py"
        print(f"== {script.name}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=None if script.stem == "bench_soak" else 900)
        print(done.stdout[-4000:], end="")
        if done.returncode != 0:
            failed.append(script.name)
            print(done.stderr[-2000:], file=sys.stderr)
        figures += [line for line in done.stdout.splitlines() if line.startswith("FIGURE ")]
        print(f"   ({time.monotonic() - started:.0f} s, exit {done.returncode})", flush=True)
    print("\n== all figures")
    print("\n".join(figures))
    if failed:
        print(f"missed or failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
