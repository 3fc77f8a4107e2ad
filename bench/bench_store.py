"""Local store figures, each with a same-run baseline (the machine is shared and
noisy: compare ratios, not absolute numbers across runs).

* durable write transactions per second through ``store.write()`` (ORM, BEGIN
  IMMEDIATE, WAL, synchronous=FULL), one audit row each, vs raw sqlite3 one-row
  commits with the same pragmas;
* the same, for 100 audit rows per transaction vs raw sqlite3 100 rows per commit;
* cost of opening an existing store in a fresh process vs ``import sqlalchemy``;
* scrypt verifier at the production parameters (N=2**17).

Run: ``python bench/bench_store.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def raw_sqlite(path: Path, rows: int, per_tx: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, at TEXT, payload TEXT, h TEXT)")
    start = time.perf_counter()
    for base in range(0, rows, per_tx):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(base, base + per_tx):
            conn.execute(
                "INSERT INTO t VALUES (?, ?, ?, ?)", (i + 1, "2026-01-01T00:00:00", '{"q":1}', "0" * 64)
            )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return rows / elapsed


def store_audit(path: Path, rows: int, per_tx: int) -> float:
    from localstore import audit
    from localstore.db import open_store

    store = open_store(path)
    start = time.perf_counter()
    for base in range(0, rows, per_tx):
        with store.write() as session:
            for i in range(base, base + per_tx):
                audit.append(session, user_id="dealer1", mode="BACKUP", action="bench", payload={"q": i})
    elapsed = time.perf_counter() - start
    store.close()
    return rows / elapsed


def fresh_process(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for per_tx in (1, 100):
            raw = raw_sqlite(tmp / f"raw{per_tx}.db", args.rows, per_tx)
            ours = store_audit(tmp / f"store{per_tx}.db", args.rows, per_tx)
            print(
                f"audit rows/s, {per_tx:>3} per tx: store.write() {ours:10.0f}   raw sqlite3 {raw:10.0f}   "
                f"ratio {ours / raw:.2f}"
            )
        db = tmp / "store1.db"
        base = min(fresh_process("import sqlalchemy.orm") for _ in range(3))
        opened = min(
            fresh_process(f"from localstore.db import open_store; open_store({str(db)!r}).close()")
            for _ in range(3)
        )
        print(
            f"fresh process: open an existing store {opened * 1000:.0f} ms   import sqlalchemy.orm "
            f"{base * 1000:.0f} ms   ratio {opened / base:.2f}"
        )
    from localstore.credentials import check_verifier, make_verifier

    start = time.perf_counter()
    verifier = make_verifier("demo")
    made = time.perf_counter() - start
    start = time.perf_counter()
    assert check_verifier(verifier, "demo")
    checked = time.perf_counter() - start
    print(f"scrypt N=2**17 r=8 p=1: make {made * 1000:.0f} ms, check {checked * 1000:.0f} ms")


if __name__ == "__main__":
    main()
