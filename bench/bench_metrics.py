"""What the Prometheus metrics cost on the hot path (issue 14, "Bench"): metrics ON against
the same runs with metrics OFF, each as a ratio to a same-run baseline.  Goal: within 5%.

(A) journal acks/s: the desk-layer loop bench_backup's P4 times (desk.place in BACKUP +
    journal.acknowledge on the store file), OFF vs ON, where ON is what a deployment adds:
    an agent process serving ``MonitorServer`` on the SAME store file (a helper process of
    this bench: the store opened, MonitorServer started, no runtime), scraped at 1 Hz
    (Prometheus' usual interval is 15 s: 1 Hz is harsher) and, as a stress row, at 10 Hz.
(B) TUI key latency p50/p99: bench/bench_tui.py's method (the console in a 200x50 pty,
    5,000 + 5,000 rows under 1,000 updates/s, cursor keys written by this process every
    ~50 ms), OFF vs ON, where ON is the child console also serving a MonitorServer on its
    own store (bench_tui.py ``--child grid --metrics PORT_FILE``) scraped at 1 Hz, and at
    10 Hz as a stress row.  A p99 of a run's ~190 keys is a noisy figure: compare the rounds.
(C) the online request path: BackendClient calls to a real mainsim with ``observer`` None
    vs ``Metrics(store).request`` (what the agent installs): per-call time and ratio; and
    the observer's own cost per call, alone.

The scraper is a third process (as Prometheus is), so its HTTP client's CPU is not charged
to the process measured; each scrape's time and the scrapes actually done are reported.
The machine is shared and noisy (2 cores): the variants alternate in short rounds (their
order rotated from round to round) and a figure is the median of the per-round ratios
(ON/OFF), so a load that changes during the run moves both sides alike.  No figure here is
asserted anywhere; tests never time things.

    python bench/bench_metrics.py [--quick]        # --quick: under ~2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

GOAL = 1.05  # ON within 5% of OFF


# ============================================================================ helper processes


def serve_main(store_file: str) -> None:
    """``--serve STORE``: an agent's metrics port on ``STORE`` (no runtime), until stdin closes."""
    from localstore.db import open_store
    from sync.monitoring import MonitorServer

    store = open_store(store_file, create=False)
    server = MonitorServer(store, host="127.0.0.1", port=0)
    print(server.port, flush=True)
    sys.stdin.read()  # the bench closes our stdin (or dies) to stop us
    server.close()
    store.close()


def scrape_main() -> None:
    """``--scrape``: a Prometheus stand-in, driven by one-line commands on stdin, each
    answered by one JSON line on stdout:

    - ``url URL``: scrape URL; ``portfile PATH``: scrape http://127.0.0.1:<port in PATH>/metrics
      once PATH exists (the TUI child writes it as it starts);
    - ``rate HZ``: scrape every 1/HZ s from now (the first after half a period, so that T
      seconds hold HZ x T scrapes), 0 stops; the answer is
      what the previous setting did: scrapes, errors, seconds per scrape (median, max), bytes.
    """
    lock = threading.Lock()  # held during a scrape: a rate change waits for the one in flight
    changed = threading.Condition(lock)
    state: dict = {"url": None, "portfile": None, "hz": 0.0, "gen": 0}
    stats: dict = {"times": [], "errors": 0, "bytes": 0}

    def target() -> str | None:
        if state["url"] is None and state["portfile"]:
            try:
                port = int(Path(state["portfile"]).read_text())
            except (OSError, ValueError):
                return None
            state["url"] = f"http://127.0.0.1:{port}/metrics"
        return state["url"]

    def loop() -> None:
        with changed:
            while True:
                while state["hz"] <= 0:
                    changed.wait()
                gen, period = state["gen"], 1.0 / state["hz"]
                due = time.monotonic() + period / 2  # at (k + 1/2) / HZ: HZ x T scrapes in T seconds
                while True:
                    changed.wait(max(0.0, due - time.monotonic()))  # releases the lock while waiting
                    if state["gen"] != gen:
                        break
                    if time.monotonic() < due:
                        continue
                    url = target()
                    if url is None:
                        stats["errors"] += 1
                    else:
                        t0 = time.perf_counter()
                        try:
                            with urllib.request.urlopen(url, timeout=5) as r:
                                stats["bytes"] += len(r.read())
                            stats["times"].append(time.perf_counter() - t0)
                        except OSError:
                            stats["errors"] += 1
                    due += period

    threading.Thread(target=loop, daemon=True).start()
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        with changed:
            if cmd == "url":
                state["url"], state["portfile"] = arg, None
                reply: dict = {"ok": True}
            elif cmd == "portfile":
                state["url"], state["portfile"] = None, arg
                reply = {"ok": True}
            elif cmd == "rate":
                ts = sorted(stats["times"])
                reply = {
                    "scrapes": len(ts),
                    "errors": stats["errors"],
                    "median_s": statistics.median(ts) if ts else None,
                    "max_s": ts[-1] if ts else None,
                    "bytes": stats["bytes"],
                }
                stats.update(times=[], errors=0, bytes=0)
                state["hz"], state["gen"] = float(arg), state["gen"] + 1
                changed.notify_all()
            else:
                reply = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(reply), flush=True)


class Scraper:
    """The parent's handle on a ``--scrape`` process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--scrape"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.all_times: list[float] = []  # median scrape times of each ON segment

    def cmd(self, line: str) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"scraper: {reply['error']}")
        return reply

    def rate(self, hz: float) -> dict:
        """Set the scrape rate; returns what the previous rate did."""
        done = self.cmd(f"rate {hz}")
        if done.get("median_s") is not None:
            self.all_times.append(done["median_s"])
        return done

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _verdict(ratio: float, higher_is_better: bool) -> str:
    ok = ratio >= 1 / GOAL if higher_is_better else ratio <= GOAL
    return "OK" if ok else "OVER 5%"


# ============================================================================ (A) journal acks/s


def bench_journal(home: Path, seg_s: float, rounds: int) -> dict:
    """Acks/s through the desk, OFF / ON 1 Hz / ON 10 Hz, in rotated rounds of ``seg_s`` each."""
    from bench_backup import reset_journal

    from contract import clock
    from contract.wire import OrderType, Side
    from localstore.db import open_store
    from sync.trading import desk, journal
    from sync.trading.policy import OrderTicket

    store_file = home / "lifeboat.db"
    con = sqlite3.connect(store_file)  # the set-up P4 makes (bench_backup.p4)
    with con:
        con.execute("UPDATE policy SET allow_new_exposure = 1, killswitch = 0")
        keys = con.execute(
            "SELECT client_id, exchange, symbol, product FROM positions "
            "WHERE exchange IN ('NSE', 'BSE') AND net_quantity > 0"
        ).fetchall()
        con.execute("UPDATE client_limits SET max_order_value = 1000000000000")
    con.close()
    reset_journal(store_file)
    actor = desk.Actor("super1", "supervisor", frozenset(), clock.today_ist())
    tickets = [OrderTicket(c, ex, sym, Side.BUY, 1, prod, OrderType.MARKET) for c, ex, sym, prod in keys]
    store = open_store(store_file)
    done = [0]

    def acks(seconds: float) -> tuple[int, float]:
        """Place and acknowledge for ``seconds``: (acks, seconds taken)."""
        t0 = time.perf_counter()
        end, n = t0 + seconds, 0
        while True:
            rec = desk.place(store, actor, tickets[done[0] % len(tickets)], mode="BACKUP")
            journal.acknowledge(store, [rec.seq])
            done[0] += 1
            n += 1
            if time.perf_counter() >= end:
                return n, time.perf_counter() - t0

    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(store_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    scraper = Scraper()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        scraper.cmd(f"url http://127.0.0.1:{port}/metrics")
        scraper.rate(20)  # warm up both: the first scrape reads the whole audit log once
        acks(0.5)
        scraper.rate(0)
        acks(0.5)
        variants = (("off", 0.0), ("on_1hz", 1.0), ("on_10hz", 10.0))
        rates: dict[str, list[float]] = {v: [] for v, _ in variants}
        ratios: dict[str, list[float]] = {"on_1hz": [], "on_10hz": []}
        scrapes: dict[str, list[dict]] = {"on_1hz": [], "on_10hz": []}
        for r in range(rounds):
            order = variants[r % 3 :] + variants[: r % 3]
            got: dict[str, float] = {}
            for name, hz in order:
                if hz:
                    scraper.rate(hz)
                n, seg = acks(seg_s)
                got[name] = n / seg
                if hz:
                    did = scraper.rate(0)
                    did["seconds"] = seg
                    scrapes[name].append(did)
                rates[name].append(got[name])
            for name in ratios:
                ratios[name].append(got[name] / got["off"])
    finally:
        scraper.close()
        if server.stdin:
            server.stdin.close()
        server.wait(10)
        store.close()
    out: dict = {"segment_s": seg_s, "rounds": rounds, "entries_journaled": done[0]}
    print(
        f"(A) journal acks/s through the desk (desk.place BACKUP + journal.acknowledge, bench_backup P4's loop); "
        f"{rounds} rounds x 3 variants x {seg_s:g} s, order rotated each round; "
        f"ON = an agent process serving /metrics on the same store file, scraped by another process"
    )
    print(
        f"    {'variant':10}{'acks/s (median)':>17}{'ON/OFF (median of rounds)':>28}{'scrapes/s':>11}"
        f"{'scrape ms p50':>15}{'errors':>8}"
    )
    print(f"    {'off':10}{_med(rates['off']):17,.0f}{'1.000 (baseline)':>28}{'0':>11}{'-':>15}{'-':>8}")
    for name in ("on_1hz", "on_10hz"):
        segs = scrapes[name]
        n = sum(x["scrapes"] for x in segs)
        per_s = n / sum(x["seconds"] for x in segs)
        ms = _med([x["median_s"] for x in segs if x["median_s"] is not None]) * 1000
        errs = sum(x["errors"] for x in segs)
        ratio = _med(ratios[name])
        q1, _, q3 = statistics.quantiles(ratios[name], n=4)
        spread = f"IQR [{q1:.3f}..{q3:.3f}]"
        print(
            f"    {name:10}{_med(rates[name]):17,.0f}{ratio:10.3f} {spread:>17}{per_s:11.1f}{ms:15.2f}{errs:8d}"
            f"  {_verdict(ratio, True) if name == 'on_1hz' else '(stress row)'}"
        )
        out[name] = {
            "ratio": ratio,
            "ratio_iqr": [q1, q3],
            "acks_per_s": _med(rates[name]),
            "scrapes_per_s": per_s,
            "scrape_ms": ms,
        }
    out["off"] = {"acks_per_s": _med(rates["off"])}
    return out


# ============================================================================ (B) TUI key latency


def bench_keys(rounds: int, seconds: float, rows: int, rate: int) -> dict:
    """Key latency, OFF / ON 1 Hz / ON 10 Hz (stress), one console run each per round, order rotated."""
    import bench_tui

    variants = (("off", 0.0), ("on_1hz", 1.0), ("on_10hz", 10.0))
    scraper = Scraper()
    runs: dict[str, list[dict]] = {v: [] for v, _ in variants}
    ratios: dict[tuple[str, str], list[float]] = {(v, p): [] for v, _ in variants[1:] for p in ("p50", "p99")}
    scrapes: dict[str, list[dict]] = {v: [] for v, _ in variants[1:]}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-metrics-tui-") as d:
            for i in range(rounds):
                got = {}
                for variant, hz in variants[i % 3 :] + variants[: i % 3]:
                    ns = argparse.Namespace(rows=rows, rate=rate, seconds=seconds, metrics=None)
                    if hz:
                        ns.metrics = str(Path(d) / f"port-{i}-{variant}")
                        scraper.cmd(f"portfile {ns.metrics}")
                        scraper.rate(hz)
                    got[variant] = bench_tui.run_variant("grid", ns)
                    if hz:
                        scrapes[variant].append(scraper.rate(0))
                    runs[variant].append(got[variant])
                for v, p in ratios:
                    ratios[v, p].append(got[v][f"key_ms_{p}"] / got["off"][f"key_ms_{p}"])
    finally:
        scraper.close()
    print(
        f"(B) TUI key latency (bench_tui.py's method, BookGrid desk, {rows}+{rows} rows, {rate} updates/s, "
        f"{seconds:g} s a run); {rounds} rounds x 3 variants, order rotated; ON = the console child also "
        f"serving /metrics on its store (bench_tui.py --metrics) scraped by another process"
    )
    print(
        f"    {'variant':10}{'key p50 ms':>11}{'key p99 ms':>11}{'keys':>12}{'frames/s':>10}{'stall p99':>10}"
        f"{'scrapes':>9}{'scrape ms p50':>15}"
    )
    out: dict = {"rounds": rounds, "seconds": seconds}
    for v, _ in variants:
        rs = runs[v]
        segs = scrapes.get(v, [])
        n = sum(x["scrapes"] for x in segs)
        ms = _med([x["median_s"] for x in segs if x["median_s"] is not None]) * 1000 if segs else float("nan")
        print(
            f"    {v:10}{_med([r['key_ms_p50'] for r in rs]):11.1f}{_med([r['key_ms_p99'] for r in rs]):11.1f}"
            f"{sum(r['keys_handled'] for r in rs):>6}/{sum(r['keys_sent'] for r in rs):<5}"
            f"{_med([r['frames_per_s'] for r in rs]):10.1f}{_med([r['stream_stall_p99_ms'] for r in rs]):9.1f}m"
            + (f"{n:9d}{ms:15.2f}" if segs else f"{'0':>9}{'-':>15}")
        )
        out[v] = {
            "key_p50_ms": _med([r["key_ms_p50"] for r in rs]),
            "key_p99_ms": _med([r["key_ms_p99"] for r in rs]),
        }
        if segs:
            out[v].update(scrapes=n, scrape_ms=ms)
    for (v, p), rs_ in ratios.items():
        ratio = _med(rs_)
        print(
            f"    {v} / off key {p}: {ratio:.3f} (median of rounds; each: {', '.join(f'{x:.2f}' for x in rs_)})"
            f"  {_verdict(ratio, False) if v == 'on_1hz' else '(stress row)'}"
        )
        out[v][f"key_{p}_ratio"] = ratio
    errors = sum(x["errors"] for segs in scrapes.values() for x in segs)
    print(
        f"    (scrapes: successful ones; {errors} more tries failed: before the console's port was up or "
        f"after it exited)"
    )
    return out


# ============================================================================ (C) online request path


async def _requests(url: str, store, n: int) -> dict:
    from bench_client import _resting_orders

    from backend_client.client import BackendClient
    from contract import wire
    from sync.metrics import Metrics

    metrics = Metrics(store)
    async with BackendClient(url) as client:
        session = await client.login("dealer1", "demo")
        instruments = await client.instruments()
        bodies = _resting_orders(instruments, session.user.client_ids[0], 2 * n + 20, uuid.uuid4().hex[:6])
        reqs = [wire.OrderRequest.model_validate(b) for b in bodies]
        placed: list[str] = []
        for req in reqs[:20]:  # warm-up, both ways
            client.observer = None if len(placed) % 2 else metrics.request
            placed.append((await client.place_order(req)).order.order_id)
        reqs = reqs[20:]
        # call by call: OFF and ON alternate (which goes first alternates too), so a pair of
        # calls sees the same machine; a figure is the median over the pairs
        times: dict[str, dict[str, list[float]]] = {k: {"off": [], "on": []} for k in ("post", "get")}
        ratios: dict[str, list[float]] = {"post": [], "get": []}
        reqs_left = iter(reqs)
        for i in range(n):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            got: dict[str, dict[str, float]] = {"post": {}, "get": {}}
            ids = {}
            for variant in order:
                client.observer = metrics.request if variant == "on" else None
                t0 = time.perf_counter()
                ids[variant] = (await client.place_order(next(reqs_left))).order.order_id
                got["post"][variant] = time.perf_counter() - t0
            for variant in order:
                client.observer = metrics.request if variant == "on" else None
                t0 = time.perf_counter()
                await client.order(ids[variant])  # GET /orders/{order_id}: a templated endpoint
                got["get"][variant] = time.perf_counter() - t0
            for kind, by_variant in got.items():
                for variant, t in by_variant.items():
                    times[kind][variant].append(t)
                ratios[kind].append(by_variant["on"] / by_variant["off"])
        client.observer = None
    counted = sum(
        s.value
        for fam in metrics.registry.collect()
        if fam.name == "lifeboat_backend_request_duration_seconds"
        for s in fam.samples
        if s.name.endswith("_count")
    )
    # the observer alone, as the client calls it (no I/O): what it adds to every call
    reps = 50_000
    t0 = time.perf_counter()
    for _ in range(reps):
        metrics.request("GET", "/orders/O000123", 0.003, "ok")
    obs_get = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    for _ in range(reps):
        metrics.request("POST", "/orders", 0.003, "ok")
    obs_post = (time.perf_counter() - t0) / reps
    return {
        "n": n,
        "times": times,
        "ratios": ratios,
        "counted": counted,
        "observer_us": {"get": obs_get * 1e6, "post": obs_post * 1e6},
    }


def bench_requests(root: Path, n: int) -> dict:
    from localstore.db import open_store
    from tests.simproc import SimProcess

    (root / "sim").mkdir()
    sim = SimProcess(db=root / "sim" / "mainsim.db", workdir=root / "sim").start()
    store = open_store(root / "metrics-store.db")
    try:
        res = asyncio.run(_requests(sim.url, store, n))
    finally:
        sim.kill()
        store.close()
    print(
        f"(C) online request path: BackendClient against a real mainsim, observer None (OFF) vs "
        f"Metrics(store).request (ON), {n} OFF/ON pairs of each call, call by call (which goes first alternates)"
    )
    out: dict = {"n": n, "observations_counted": res["counted"]}
    for kind, label in (("post", "POST /orders (place_order)"), ("get", "GET /orders/{order_id} (order)")):
        off, on = (_med(res["times"][kind][v]) * 1e6 for v in ("off", "on"))
        ratio = _med(res["ratios"][kind])
        obs = res["observer_us"][kind]
        print(
            f"    {label:32} OFF {off:7.0f} us  ON {on:7.0f} us (medians)  ON/OFF {ratio:.3f} "
            f"(median of pairs) {_verdict(ratio, False)}; the observer alone {obs:.1f} us/call "
            f"= {obs / off * 100:.2f}% of a call"
        )
        out[kind] = {"off_us": off, "on_us": on, "ratio": ratio, "observer_us": obs}
    print(f"    observations counted by the ON metrics: {res['counted']:.0f} (expected {n * 2 + 10})")
    return out


# ============================================================================ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer, shorter rounds (under ~2 minutes)")
    ap.add_argument("--serve", metavar="STORE", help=argparse.SUPPRESS)
    ap.add_argument("--scrape", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", choices=("A", "B", "C"), action="append", help="run only these parts")
    a = ap.parse_args()
    if a.serve:
        serve_main(a.serve)
        return
    if a.scrape:
        scrape_main()
        return
    import bench_backup  # sets the bench's keyring backend and production scrypt parameters

    parts = set(a.only or ("A", "B", "C"))
    load0 = os.getloadavg()[0]
    print(
        f"bench_metrics{' --quick' if a.quick else ''}: metrics ON vs OFF, same run; goal ON within 5% "
        f"(ratio >= {1 / GOAL:.3f} for a rate, <= {GOAL:.2f} for a time); load average at start {load0:.2f} "
        f"({os.cpu_count()} cores, shared)"
    )
    result: dict = {"quick": a.quick, "load_start": load0}
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as d:
        root = Path(d)
        if "A" in parts:
            (root / "backup").mkdir()
            home = bench_backup.setup(root / "backup")
            result["journal"] = bench_journal(home, seg_s=1.0, rounds=10 if a.quick else 40)
        if "C" in parts:
            result["requests"] = bench_requests(root, n=300 if a.quick else 1500)
        if "B" in parts:
            result["tui"] = bench_keys(
                rounds=2 if a.quick else 5, seconds=4.0 if a.quick else 10.0, rows=5000, rate=1000
            )
    result["load_end"] = os.getloadavg()[0]
    print(f"load average at end {result['load_end']:.2f}")
    print(json.dumps({"bench_metrics": result}, sort_keys=True))


if __name__ == "__main__":
    main()
