"""P5: journal replay throughput and "main back -> reconciled" time, with same-run baselines.

1. A journal of N PLACE intents (5,000; --quick: 500), MARKET orders of one share,
   BUY then SELL on the same position so no risk limit is reached, replayed to a real
   mainsim by the engine (SENT commit, POST, outcome commit per entry), against raw
   sequential httpx POSTs of the same orders (other ids) to the same server in the
   same run: sync ``httpx.Client`` and ``httpx.AsyncClient`` (what BackendClient uses).
   Exactly once is checked by counting the orders on main per client_order_id.
2. A book of at least 500 open positions squared off in backup (one SQUARE_OFF intent
   per leg), then main "comes back": the time to replay every leg and reconcile.

    python bench/bench_replay.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from backend_client.client import BackendClient
from localstore.models import JournalKind
from sync.reconcile import reconcile
from sync.replay import Replayer, ReplayResult
from sync.trading import journal
from sync.trading.journal import Intent
from tests.replay_env import Main, make_console
from tests.simproc import SimProcess


def order_plan(main: Main, n: int) -> list[dict]:
    insts = [i for i in main.http.get("/instruments").json() if i["exchange"] == "NSE"]
    clients = [c["client_id"] for c in main.http.get("/clients").json()]
    out = []
    for k in range(n):
        inst = insts[(k // 2) % len(insts)]
        out.append(
            {
                "client_id": clients[(k // 2) % len(clients)],
                "exchange": "NSE",
                "symbol": inst["symbol"],
                "side": "BUY" if k % 2 == 0 else "SELL",
                "quantity": 1,
                "product": "MIS",
                "order_type": "MARKET",
                "validity": "DAY",
            }
        )
    return out


def journal_places(con, plan: list[dict]) -> None:
    intents = [
        Intent(
            JournalKind.PLACE,
            o["client_id"],
            o["exchange"],
            o["symbol"],
            o["product"],
            payload={"side": o["side"], "quantity": o["quantity"], "order_type": "MARKET", "validity": "DAY"},
        )
        for o in plan
    ]
    journal.write(
        con.store,
        intents,
        user_id="super1",
        mode="BACKUP",
        trading_date=con.trading_date,
        audit_action="bench_journal",
    )


def raw_sync(url: str, token: str, plan: list[dict], tag: str) -> float:
    with httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as c:
        t0 = time.perf_counter()
        for k, o in enumerate(plan):
            r = c.post("/orders", json={**o, "client_order_id": f"{tag}-{k}"})
            assert r.status_code == 201, r.text
        return time.perf_counter() - t0


async def raw_async(url: str, token: str, plan: list[dict], tag: str) -> float:
    async with httpx.AsyncClient(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as c:
        t0 = time.perf_counter()
        for k, o in enumerate(plan):
            r = await c.post("/orders", json={**o, "client_order_id": f"{tag}-{k}"})
            assert r.status_code == 201, r.text
        return time.perf_counter() - t0


async def replay_and_reconcile(con, url: str, *, reconciled: bool) -> tuple[float, float, ReplayResult]:
    async with BackendClient(url) as c:
        await c.login("super1", "demo")
        t0 = time.perf_counter()
        result = await Replayer(con.store, c).run()
        t1 = time.perf_counter()
        if reconciled:
            await reconcile(con.store, c, result)
        return t1 - t0, time.perf_counter() - t0, result


def main_() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 500 if a.quick else 5000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sim = SimProcess(db=root / "main.db", workdir=root).start()
        try:
            main = Main(sim.url)
            token = main.http.headers["Authorization"].split()[1]
            plan = order_plan(main, n)
            con = make_console(sim.url, root, "p5")
            journal_places(con, plan)
            t_sync = raw_sync(sim.url, token, plan, "raw-sync")
            t_async = asyncio.run(raw_async(sim.url, token, plan, "raw-async"))
            t_replay, _, result = asyncio.run(replay_and_reconcile(con, sim.url, reconciled=False))
            counts = main.coid_counts()
            journaled = [e.client_order_id for e in con.journal()]
            once = all(counts.get(c) == 1 for c in journaled)
            states = {o.state for o in result.outcomes}
            print(
                f"P5 replay of {n} PLACE entries: {n / t_replay:,.0f} entries/s "
                f"(exactly once on main: {once}; states {sorted(states)})"
            )
            print(
                f"   raw sequential httpx.Client POSTs:      {n / t_sync:,.0f} req/s -> ratio "
                f"{t_sync / t_replay:.2f}x (goal >= 0.5x)"
            )
            print(
                f"   raw sequential httpx.AsyncClient POSTs: {n / t_async:,.0f} req/s -> ratio "
                f"{t_async / t_replay:.2f}x"
            )
            con.close()

            # 2. a book of >= 500 legs, squared off in backup, replayed when main is back
            have = {
                (p["client_id"], p["symbol"]) for p in main.http.get("/positions").json() if p["net_quantity"]
            }
            insts = [i for i in main.http.get("/instruments").json() if i["exchange"] == "NSE"]
            clients = [c["client_id"] for c in main.http.get("/clients").json()]
            k = 0
            while len(have) < 520:
                cl, inst = clients[k % len(clients)], insts[(k // len(clients)) % len(insts)]
                k += 1
                if (cl, inst["symbol"]) in have:
                    continue
                main.place(cl, "NSE", inst["symbol"], "BUY", 1, "CNC", f"book-{k}")
                have.add((cl, inst["symbol"]))
            book = make_console(sim.url, root, "p5b")
            _, _, receipts = _whole_book(book)
            t_rep, t_total, result = asyncio.run(replay_and_reconcile(book, sim.url, reconciled=True))
            flat = all(p["net_quantity"] == 0 for p in main.http.get("/positions").json())
            print(
                f"P5 main back -> reconciled, {len(receipts)}-leg book: {t_total:.2f} s "
                f"(replay {t_rep:.2f} s, {1000 * t_rep / len(receipts):.1f} ms/leg; reconcile "
                f"{t_total - t_rep:.2f} s); book flat on main: {flat}"
            )
            print(
                f"   baseline: {len(receipts)} raw sequential httpx.Client POSTs would take "
                f"{len(receipts) * t_sync / n:.2f} s at the rate measured above"
            )
            book.close()
            main.close()
        finally:
            sim.kill()


def _whole_book(con):
    from sync.trading import desk

    return desk.squareoff(con.store, con.actor, client_id=None, symbol=None, keep_orders=True, mode="BACKUP")


if __name__ == "__main__":
    os.environ.setdefault("LIFEBOAT_TEST_SCRYPT_N", "1024")
    main_()
