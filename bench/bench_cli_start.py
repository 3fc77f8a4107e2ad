"""P7: `lifeboat status --json` cold start vs `python -c "import sqlalchemy, httpx,
typer"` (goal <= 1.3x), median of ~10 runs each, alternating so both see the same
machine load.  The store is a real one (created by a first run); the backend is a
refused port, so the probe costs one refused connect.  Also prints the heaviest
imports on the status path (python -X importtime) to show where start-up goes.

Run: ``python bench/bench_cli_start.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv, env) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, capture_output=True, env=env, cwd=ROOT, check=False)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    runs = 5 if a.quick else 11
    with tempfile.TemporaryDirectory() as d:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")}
        env.update(LIFEBOAT_HOME=d, LIFEBOAT_BACKEND_URL="http://127.0.0.1:9", PYTHONPATH=str(ROOT))
        status = [sys.executable, "-m", "console.cli", "status", "--json"]
        base = [sys.executable, "-c", "import sqlalchemy, httpx, typer"]
        subprocess.run(status, capture_output=True, env=env, cwd=ROOT)  # create the store once
        s_times, b_times = [], []
        for _ in range(runs):
            b_times.append(timed(base, env))
            s_times.append(timed(status, env))
        s, b = statistics.median(s_times), statistics.median(b_times)
        print(
            f"P7 status --json cold start: median {s * 1000:.0f} ms vs import sqlalchemy+httpx+typer "
            f"{b * 1000:.0f} ms = {s / b:.2f}x (goal <= 1.3x) {'OK' if s / b <= 1.3 else 'MISSED'}"
        )
        p = subprocess.run(
            [sys.executable, "-X", "importtime", *status[1:]],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
        )
        rows = []
        for line in p.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[1].strip().isdigit():
                rows.append((int(parts[0].split(":")[1]), parts[2].rstrip()))
        print("   heaviest self import times on the status path (ms):")
        for us, name in sorted(rows, reverse=True)[:8]:
            print(f"   {us / 1000:7.1f}  {name.strip()}")


if __name__ == "__main__":
    main()
