"""The intraday cut-off's speed (issue 13, "Bench"): cut-off to every leg of a 500-leg
intraday (MIS) book accepted by main, against raw sequential POSTs of the same legs.

* The book: a real mainsim whose seed book is grown (MIS buys over plain HTTP) until one
  segment (NSE) holds exactly 500 open MIS positions; main is then stopped and its
  database kept as the golden copy (the seed's few pending MIS orders in the segment are
  cancelled there, so the cut-off's work is the 500 legs alone, like the baseline's; its
  cancels are covered by tests/integration/test_rms_cutoff.py).  Every run starts a
  fresh mainsim on a copy of it, so both sides always face the identical book.
* Lifeboat's side: a console logs in and takes its BOD (untimed), then
  ``sync.rms.cutoff.run(..., mode="ONLINE", client=...)`` is timed from its call to the
  answer to the last leg's POST /orders (the BackendClient's observer stamps it); the
  time to run()'s return (the pass's end, main's positions read again) is shown too.
  Checked every run: each leg applied, each leg id exactly once on main, the segment's
  MIS book flat on main.
* The baseline, same run, on its own fresh copy: raw sequential POST /orders of the very
  same 500 legs (the requests the cut-off sent: side, quantity, LIMIT at the protected
  price) with ``httpx.Client`` over one connection, no lifeboat code
  (bench/bench_replay.py's ``raw_sync``), timed from the first POST to the last answer.
* The two alternate, the order rotated each run, after one untimed warm-up of each (the
  warm-up's cut-off gives the baseline its legs).  Reported: p50 and p90 of each, the
  ratio of the p50s and the median of the runs' ratios (goal <= 1.0x), where the
  cut-off's requests went (count and time per kind), the CPU seconds each side's
  process and main's used (on this 2-core machine the replay's own CPU is its floor),
  a table and a final JSON line.

    python bench/bench_rms_cutoff.py [--quick] [--runs N] [--lanes N] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("LIFEBOAT_TEST_SCRYPT_N", "1024")

from bench_replay import raw_sync  # noqa: E402  (bench/ is not a package)

from backend_client.client import BackendClient  # noqa: E402
from sync import replay  # noqa: E402
from sync.rms import cutoff  # noqa: E402
from sync.rms.settings import RmsSettings  # noqa: E402
from tests.replay_env import PASSWORD, SUPER, Console, Main, make_console  # noqa: E402
from tests.simproc import SimProcess  # noqa: E402

SEGMENT = "NSE"
N_LEGS = 500
GOAL = 1.0


# --------------------------------------------------------------------------- the book


def mis_open(main: Main) -> list[dict]:
    return [
        p
        for p in main.http.get("/positions").json()
        if p["exchange"] == SEGMENT and p["product"] == "MIS" and p["net_quantity"]
    ]


def grow_mis_book(main: Main, n: int) -> int:
    """MIS buys of one lot on new (client, symbol) pairs until the segment holds ``n`` open
    MIS positions; returns how many there are."""
    have = {(p["client_id"], p["symbol"]) for p in mis_open(main)}
    insts = [i for i in main.http.get("/instruments").json() if i["exchange"] == SEGMENT]
    clients = [c["client_id"] for c in main.http.get("/clients").json()]
    k = 0
    while len(have) < n:
        if k >= len(clients) * len(insts):
            raise RuntimeError(f"only {len(have)} (client, symbol) pairs in {SEGMENT}; need {n}")
        cl, inst = clients[k % len(clients)], insts[(k // len(clients)) % len(insts)]
        k += 1
        if (cl, inst["symbol"]) in have:
            continue
        main.place(cl, SEGMENT, inst["symbol"], "BUY", inst["lot_size"], "MIS", f"BOOK-{k}")
        have.add((cl, inst["symbol"]))
    return len(mis_open(main))


def golden_book(root: Path) -> Path:
    """mainsim's database holding the 500-leg book, main stopped cleanly."""
    db = root / "golden.db"
    sim = SimProcess(db=db, workdir=root).start()
    try:
        main = Main(sim.url)
        # the seed's pending MIS orders in the segment are cancelled here, so that the cut-off's
        # work is the 500 legs alone, like the baseline's (its cancels are tested, not timed)
        pending = [
            o
            for o in main.orders()
            if o["product"] == "MIS"
            and o["exchange"] == SEGMENT
            and o["status"] in ("OPEN", "TRIGGER_PENDING")
        ]
        for o in pending:
            r = main.http.delete(f"/orders/{o['order_id']}")
            assert r.status_code == 200, r.text
        got = grow_mis_book(main, N_LEGS)
        main.close()
    finally:
        sim.stop()
    assert got == N_LEGS, got
    return db


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fresh_sim(root: Path, golden: Path, name: str) -> SimProcess:
    """A mainsim on a fresh copy of the golden database."""
    db = root / f"{name}.db"
    for suffix in ("", "-wal"):
        src = Path(str(golden) + suffix)
        if src.exists():
            shutil.copyfile(src, str(db) + suffix)
    return SimProcess(db=db, workdir=root).start()


# --------------------------------------------------------------------------- the two sides


def _kind(method: str, path: str) -> str:
    if path.startswith("/orders/by-client-id/"):
        path = "/orders/by-client-id/*"
    elif path.startswith("/orders/") and path.count("/") == 2:
        path = "/orders/{id}"
    return f"{method} {path}"


async def _cutoff(con: Console, url: str, main_pid: int, profile: cProfile.Profile | None) -> dict:
    async with BackendClient(url) as c:
        await c.login(SUPER, PASSWORD)
        calls: Counter[str] = Counter()
        spent: Counter[str] = Counter()
        stamps = {"first_leg": 0.0, "last_leg": 0.0, "legs": 0}

        def observe(method: str, path: str, seconds: float, outcome: str) -> None:
            kind = _kind(method, path)
            calls[kind] += 1
            spent[kind] += seconds
            if kind == "POST /orders" and outcome == "ok":
                stamps["last_leg"] = time.perf_counter()
                if not stamps["first_leg"]:
                    stamps["first_leg"] = stamps["last_leg"] - seconds  # when it went out
                stamps["legs"] += 1

        c.observer = observe
        if profile is not None:
            profile.enable()
        cpu0, main0 = time.process_time(), cpu_of(main_pid)
        t0 = time.perf_counter()
        result = await cutoff.run(con.store, con.actor, SEGMENT, RmsSettings(), mode="ONLINE", client=c)
        t_end = time.perf_counter()
        cpu, main_cpu = time.process_time() - cpu0, cpu_of(main_pid) - main0
        if profile is not None:
            profile.disable()
    return {
        "result": result,
        "to_last_leg": stamps["last_leg"] - t0,
        "to_first_leg": stamps["first_leg"] - t0,
        "to_return": t_end - t0,
        "posts": stamps["legs"],
        "cpu": cpu,
        "main_cpu": main_cpu,
        "calls": calls,
        "spent": spent,
    }


def cutoff_run(root: Path, golden: Path, name: str, profile: cProfile.Profile | None = None) -> dict:
    sim = fresh_sim(root, golden, name)
    con = None
    try:
        main = Main(sim.url)
        con = make_console(sim.url, root, f"console-{name}")  # login + BOD: untimed
        assert sim.proc is not None
        out = asyncio.run(_cutoff(con, sim.url, sim.proc.pid, profile))
        res = out["result"]
        legs = [o for o in main.orders() if o["client_order_id"].startswith(f"RMS{con.trading_date:%y%m%d}S")]
        counts = Counter(o["client_order_id"] for o in legs)
        assert res.replay_status == "done" and not res.left_on_main, res.as_dict()
        assert len(res.plan.legs) == N_LEGS, len(res.plan.legs)
        assert {leg.outcome for leg in res.plan.legs} == {"applied"}, Counter(
            x.outcome for x in res.plan.legs
        )
        assert len(legs) == N_LEGS and set(counts.values()) == {1}, (len(legs), Counter(counts.values()))
        assert {o["status"] for o in legs} == {"COMPLETE"}, Counter(o["status"] for o in legs)
        assert mis_open(main) == [], "the segment's MIS book is not flat on main"
        out["legs"] = [
            {
                "client_id": o["client_id"],
                "exchange": o["exchange"],
                "symbol": o["symbol"],
                "side": o["side"],
                "quantity": o["quantity"],
                "product": o["product"],
                "order_type": o["order_type"],
                "price": o["price"],
                "validity": o["validity"],
            }
            for o in sorted(legs, key=lambda o: o["created_at"])
        ]
        main.close()
        return out
    finally:
        if con is not None:
            con.close()
        sim.kill()


def raw_run(root: Path, golden: Path, name: str, plan: list[dict]) -> dict:
    sim = fresh_sim(root, golden, name)
    try:
        assert sim.proc is not None
        main = Main(sim.url)
        token = main.http.headers["Authorization"].split()[1]
        cpu0, main0 = time.process_time(), cpu_of(sim.proc.pid)
        t = raw_sync(sim.url, token, plan, f"RAW-{name}")
        cpu, main_cpu = time.process_time() - cpu0, cpu_of(sim.proc.pid) - main0
        assert mis_open(main) == [], "the raw legs did not flatten the book"
        main.close()
        return {"t": t, "cpu": cpu, "main_cpu": main_cpu}
    finally:
        sim.kill()


# --------------------------------------------------------------------------- report


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a short list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def main_() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 runs of each side (else 7)")
    ap.add_argument("--runs", type=int, default=None, help="runs of each side")
    ap.add_argument("--profile", action="store_true", help="cProfile one more cut-off run; print the top")
    ap.add_argument("--lanes", type=int, default=None, help="the replay's lanes (default: sync.replay.LANES)")
    a = ap.parse_args()
    runs = a.runs or (3 if a.quick else 7)
    if a.lanes is not None:  # the cut-off's Replayer takes the module's default
        replay.LANES = a.lanes
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.setdefault("LIFEBOAT_CONFIG_DIR", str(root / "config"))
        t0 = time.perf_counter()
        golden = golden_book(root)
        print(
            f"book: {N_LEGS} MIS positions in {SEGMENT} on main ({time.perf_counter() - t0:.1f} s to build)"
        )
        warm = cutoff_run(root, golden, "warm-c")
        plan = warm["legs"]
        raw_run(root, golden, "warm-r", plan)
        rows = []
        for i in range(runs):
            order = ("cutoff", "raw") if i % 2 == 0 else ("raw", "cutoff")
            row: dict = {"run": i + 1, "first": order[0]}
            for side in order:
                if side == "cutoff":
                    out = cutoff_run(root, golden, f"c{i}")
                    row.update(
                        cutoff=out["to_last_leg"],
                        cutoff_return=out["to_return"],
                        first_leg=out["to_first_leg"],
                        calls=out["calls"],
                        spent=out["spent"],
                        cpu_c=out["cpu"],
                        main_cpu_c=out["main_cpu"],
                    )
                else:
                    raw_out = raw_run(root, golden, f"r{i}", plan)
                    row.update(raw=raw_out["t"], cpu_r=raw_out["cpu"], main_cpu_r=raw_out["main_cpu"])
            row["ratio"] = row["cutoff"] / row["raw"]
            rows.append(row)
            print(
                f"  run {i + 1} ({row['first']} first): cut-off to last leg {row['cutoff']:.3f} s "
                f"(first leg out at {row['first_leg']:.3f} s) "
                f"(to return {row['cutoff_return']:.3f} s), raw {row['raw']:.3f} s, {row['ratio']:.2f}x; "
                f"CPU s lifeboat/main {row['cpu_c']:.2f}/{row['main_cpu_c']:.2f}, "
                f"raw/main {row['cpu_r']:.2f}/{row['main_cpu_r']:.2f}",
                flush=True,
            )
        cut = [r["cutoff"] for r in rows]
        ret = [r["cutoff_return"] for r in rows]
        raw = [r["raw"] for r in rows]
        ratios = [r["ratio"] for r in rows]
        p50c, p90c, p50r, p90r = pct(cut, 50), pct(cut, 90), pct(raw, 50), pct(raw, 90)
        ratio = p50c / p50r
        print()
        print(f"{N_LEGS}-leg MIS cut-off ({SEGMENT}), {runs} alternating runs each side")
        print(f"  {'':34} {'p50 s':>8} {'p90 s':>8} {'ms/leg':>8}")
        print(f"  {'cut-off -> last leg accepted':34} {p50c:8.3f} {p90c:8.3f} {1000 * p50c / N_LEGS:8.2f}")
        print(f"  {'cut-off -> run() returned':34} {pct(ret, 50):8.3f} {pct(ret, 90):8.3f} {'':>8}")
        first = [r["first_leg"] for r in rows]
        print(f"  {'cut-off -> first leg sent':34} {pct(first, 50):8.3f} {pct(first, 90):8.3f} {'':>8}")
        print(f"  {'raw sequential POSTs (httpx)':34} {p50r:8.3f} {p90r:8.3f} {1000 * p50r / N_LEGS:8.2f}")
        print(
            f"  ratio of p50s {ratio:.2f}x; median of the runs' ratios {statistics.median(ratios):.2f}x "
            f"(goal <= {GOAL:.1f}x) {'OK' if ratio <= GOAL else 'MISSED'}"
        )
        calls: Counter[str] = Counter()
        spent: Counter[str] = Counter()
        for r in rows:
            calls.update(r["calls"])
            spent.update(r["spent"])
        print("  the cut-off's requests per run (count, summed call time; calls may overlap):")
        for kind, n in calls.most_common():
            print(f"    {kind:34} {n / runs:7.0f} {spent[kind] / runs:8.3f} s")
        if a.profile:
            prof = cProfile.Profile()
            cutoff_run(root, golden, "prof", prof)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(25)
            print(buf.getvalue())
        print(
            json.dumps(
                {
                    "bench": "rms_cutoff",
                    "legs": N_LEGS,
                    "segment": SEGMENT,
                    "runs": runs,
                    "cutoff_p50_s": round(p50c, 4),
                    "cutoff_p90_s": round(p90c, 4),
                    "cutoff_return_p50_s": round(pct(ret, 50), 4),
                    "raw_p50_s": round(p50r, 4),
                    "raw_p90_s": round(p90r, 4),
                    "ratio_p50": round(ratio, 3),
                    "ratio_median_of_runs": round(statistics.median(ratios), 3),
                    "goal": GOAL,
                    "ok": ratio <= GOAL,
                    "requests_per_run": {k: round(v / runs) for k, v in calls.items()},
                }
            )
        )


if __name__ == "__main__":
    main_()
