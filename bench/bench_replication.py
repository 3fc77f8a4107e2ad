"""Bench: the DR standby's replication lag at ~500 events/s, beside a same-run baseline.

Why it exists: a promoted DR site holds what it had applied; whatever it had not is an order
the console must look up and may find missing.  The lag from a commit on main to the same
change applied on the standby must stay small (goal: p99 <= 1 s at 500 events/s).  The
machine is shared and noisy: compare the ratio, not absolute figures across runs.

    python bench/bench_replication.py           # 20 s at ~500 events/s
    python bench/bench_replication.py --quick   # 5 s

A real primary (mainsim ``--activity``: background orders, their fills and positions) and a
real standby (``--role standby --follow``), each with its own SQLite file.  For every order,
trade and position event in the window:

* applied on the standby: the time this process first sees the event's row in the STANDBY's
  database (a read-only connection polling its ``events`` table every 2 ms) minus the event's
  server time (order.updated_at, trade.traded_at, position.updated_at, stamped on main just
  before its commit);
* baseline: the same events read raw from main's ``/api/v1/stream`` (a plain WebSocket
  client, super1, no apply): receive time minus the same server time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from websockets.asyncio.client import connect

from tests.simproc import SimProcess

API = "/api/v1"


def _event_time(d: dict) -> datetime:
    return datetime.fromisoformat((d.get("updated_at") or d["traded_at"]).replace("Z", "+00:00"))


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def _login(url: str) -> str:
    r = httpx.post(f"{url}{API}/session", json={"user_id": "super1", "password": "demo"}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


def _wait_caught_up(standby: SimProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = httpx.get(f"{standby.url}{API}/health", timeout=5).json()
        if h.get("replication_lag_s") == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("the standby never caught up")


class StandbyWatcher(threading.Thread):
    """Polls the standby's events table; records (seen - server time) for events past ``start_seq``."""

    def __init__(self, db: Path, poll_s: float = 0.002):
        super().__init__(daemon=True)
        self.db, self.poll_s = db, poll_s
        self.lat: dict[int, float] = {}
        self.measuring = False
        self.stop = threading.Event()

    def run(self) -> None:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        last = con.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        while not self.stop.is_set():
            rows = con.execute("SELECT seq, body FROM events WHERE seq > ? ORDER BY seq", (last,)).fetchall()
            now = datetime.now(UTC)
            for seq, body in rows:
                if self.measuring:
                    self.lat[seq] = (now - _event_time(json.loads(body)["data"])).total_seconds()
                last = seq
            time.sleep(self.poll_s)
        con.close()


async def measure(primary: SimProcess, standby: SimProcess, seconds: float) -> None:
    token = _login(primary.url)
    raw: dict[int, float] = {}
    measuring = False
    watcher = StandbyWatcher(standby.db)
    watcher.start()

    async def raw_reader() -> None:
        ws_url = "ws" + primary.url[4:] + f"{API}/stream"
        async with connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            ping_interval=None,
        ) as ws:
            async for text in ws:
                now = datetime.now(UTC)
                msg = json.loads(text)
                if measuring and msg["type"] in ("order", "trade", "position"):
                    raw[msg["seq"]] = (now - _event_time(msg["data"])).total_seconds()

    reader = asyncio.create_task(raw_reader())
    await asyncio.sleep(1.0)  # warm-up, discarded
    measuring = watcher.measuring = True
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    measuring = watcher.measuring = False
    elapsed = time.monotonic() - t0
    await asyncio.sleep(2.0)  # let the standby apply what was committed in the window
    watcher.stop.set()
    watcher.join(5)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)

    both = sorted(set(raw) & set(watcher.lat))
    base = [raw[s] for s in both]
    lag = [watcher.lat[s] for s in both]
    health = httpx.get(f"{standby.url}{API}/health", timeout=5).json()
    ms = lambda x: f"{x * 1000:8.1f} ms"  # noqa: E731
    print(
        f"replication over {elapsed:.1f} s: {len(raw) / elapsed:,.0f} events/s on main's stream, "
        f"{len(both)} events seen on both paths (stream only {len(set(raw) - set(watcher.lat))}, "
        f"standby only {len(set(watcher.lat) - set(raw))}); standby at the end: lag "
        f"{health['replication_lag_s']} s, epoch {health['epoch']}"
    )
    print(
        f"  raw stream receive latency       p50 {ms(_pct(base, 50))}  p99 {ms(_pct(base, 99))}  (baseline)"
    )
    print(
        f"  applied on the standby           p50 {ms(_pct(lag, 50))}  p99 {ms(_pct(lag, 99))}  "
        f"max {ms(max(lag) if lag else float('nan'))}"
    )
    if base and lag:
        print(
            f"  ratio standby / raw              p50 {_pct(lag, 50) / max(_pct(base, 50), 1e-6):5.1f}x  "
            f"p99 {_pct(lag, 99) / max(_pct(base, 99), 1e-6):5.1f}x"
        )
    p99 = _pct(lag, 99)
    print(
        f"  goal p99 <= 1 s: {'MET' if p99 <= 1.0 else 'NOT MET'} ({p99 * 1000:.0f} ms); mean "
        f"{statistics.fmean(lag) * 1000 if lag else float('nan'):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 5 s window")
    parser.add_argument("--seconds", type=float, default=None, help="measured window (default 20 s)")
    parser.add_argument(
        "--activity",
        type=float,
        default=470.0,
        help="main's background orders/s (about 1.1 events each: ~500 events/s)",
    )
    args = parser.parse_args()
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    with tempfile.TemporaryDirectory(prefix="lb-bench-replication-") as tmp:
        work = Path(tmp)
        (work / "main").mkdir()
        (work / "dr").mkdir()
        primary = SimProcess(
            db=work / "main" / "mainsim.db",
            workdir=work / "main",
            extra_args=["--activity", str(args.activity)],
        ).start()
        standby = None
        try:
            standby = SimProcess(
                db=work / "dr" / "mainsim.db",
                workdir=work / "dr",
                extra_args=["--role", "standby", "--follow", primary.url],
            ).start()
            _wait_caught_up(standby)
            asyncio.run(measure(primary, standby, seconds))
        finally:
            if standby is not None:
                standby.kill()
            primary.kill()


if __name__ == "__main__":
    main()
