"""Bench: the live mirror's ingestion rate and staleness, each beside a same-run baseline.

Why it exists: backup mode is only as fresh as the mirror, so the mirror must keep up
with a busy desk and stay well under a second behind main (goal: p99 < 1 s).  The
machine is shared and noisy: compare the ratios, not absolute figures across runs.

    python bench/bench_mirror.py           # 20,000 events; 20 s of staleness at ~500 events/s
    python bench/bench_mirror.py --quick   # 5,000 events; 5 s

(a) Ingestion: N realistic wire events (orders, their fills and the positions they
    move; some orders rest and are later filled or cancelled) applied through
    Mirror.apply in batches of 200 into a fresh store, vs raw sqlite3 executemany
    upserts of the same rows (200 per transaction, WAL + synchronous=FULL, money as
    1/10,000 integers, the same primary keys) into equivalent tables.
(b) Staleness: mainsim with --activity emits order/trade/position events; super1
    (who sees every client) runs the Runtime in-process; for each applied event,
    staleness = commit time - the event's server time (order.updated_at,
    trade.traded_at, position.updated_at).  Baseline: a raw websockets reader of the
    same stream in the same window, receive time - server time, no apply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert
from websockets.asyncio.client import connect

from backend_client.client import BackendClient
from backend_client.stream import stream_url
from contract import wire
from localstore.db import open_store
from localstore.models import ClientRow
from sync.mirror import Mirror
from sync.runtime import Runtime
from tests.simproc import SimProcess

BATCH = 200
SYMBOLS = [("NSE", f"EQ{k:02d}", 1, Decimal("0.05"), Decimal(100 + 37 * k)) for k in range(30)] + [
    ("NFO", f"FUT{k}", 25 * (k + 1), Decimal("0.10"), Decimal(20000 + 500 * k)) for k in range(3)
]
CLIENTS = [f"C{1001 + k}" for k in range(45)]


# --------------------------------------------------------------------------- (a) ingestion


def make_events(n: int, seed: int = 11) -> list:
    """About n events as mainsim emits them: a market order is (order COMPLETE, trade,
    position); a limit order rests (order OPEN) and is later filled or cancelled."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 5, 3, 45, tzinfo=UTC)
    seq = 0
    out: list = []
    positions: dict[tuple, wire.Position] = {}
    resting: list[wire.Order] = []
    k = 0

    def at() -> datetime:
        return t0 + timedelta(milliseconds=2 * seq)

    def emit(cls, kind, data):
        nonlocal seq
        seq += 1
        out.append(cls(type=kind, seq=seq, data=data))

    def fill(order: wire.Order, price: Decimal) -> None:
        order = order.model_copy(
            update={
                "filled_quantity": order.quantity,
                "average_price": price,
                "status": wire.OrderStatus.COMPLETE,
                "updated_at": at(),
            }
        )
        emit(wire.OrderEvent, "order", order)
        emit(
            wire.TradeEvent,
            "trade",
            wire.Trade(
                trade_id=f"T{seq:09d}",
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                client_id=order.client_id,
                exchange=order.exchange,
                symbol=order.symbol,
                side=order.side,
                product=order.product,
                quantity=order.quantity,
                price=price,
                traded_at=at(),
            ),
        )
        key = (order.client_id, order.exchange, order.symbol, order.product)
        p = positions.get(key)
        signed = order.quantity if order.side is wire.Side.BUY else -order.quantity
        net = (p.net_quantity if p else 0) + signed
        p = wire.Position(
            client_id=order.client_id,
            exchange=order.exchange,
            symbol=order.symbol,
            product=order.product,
            net_quantity=net,
            average_price=price if net else Decimal(0),
            last_price=price,
            realised_pnl=p.realised_pnl if p else Decimal(0),
            mtm=Decimal(0),
            buy_quantity=(p.buy_quantity if p else 0) + max(signed, 0),
            sell_quantity=(p.sell_quantity if p else 0) + max(-signed, 0),
            updated_at=at(),
        )
        positions[key] = p
        emit(wire.PositionEvent, "position", p)

    while len(out) < n:
        k += 1
        if resting and rng.random() < 0.3:
            order = resting.pop(rng.randrange(len(resting)))
            if rng.random() < 0.7:
                assert order.price is not None  # what rests is a LIMIT order
                fill(order, order.price)
            else:
                emit(
                    wire.OrderEvent,
                    "order",
                    order.model_copy(
                        update={
                            "status": wire.OrderStatus.CANCELLED,
                            "status_reason": "cancelled by user",
                            "updated_at": at(),
                        }
                    ),
                )
            continue
        exch, sym, lot, tick, px = rng.choice(SYMBOLS)
        limit = rng.random() < 0.4
        price = px + rng.randint(-20, 20) * tick
        order = wire.Order(
            order_id=f"O{k:09d}",
            client_order_id=f"bench-{k}",
            client_id=rng.choice(CLIENTS),
            exchange=exch,
            symbol=sym,
            side=rng.choice(("BUY", "SELL")),
            quantity=lot * rng.randint(1, 5),
            filled_quantity=0,
            average_price=Decimal(0),
            product="MIS",
            order_type="LIMIT" if limit else "MARKET",
            price=price if limit else None,
            trigger_price=None,
            validity="DAY",
            disclosed_quantity=None,
            status="OPEN",
            placed_by="dealer1",
            created_at=at(),
            updated_at=at(),
        )
        if limit:
            emit(wire.OrderEvent, "order", order)
            resting.append(order)
        else:
            fill(order, price)
    return out[:n]


_RAW_SCHEMA = """
CREATE TABLE orders(order_id TEXT PRIMARY KEY, client_order_id TEXT NOT NULL UNIQUE, client_id TEXT NOT NULL,
  exchange TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, quantity INTEGER NOT NULL,
  filled_quantity INTEGER NOT NULL, average_price INTEGER NOT NULL, product TEXT NOT NULL, order_type TEXT NOT NULL,
  price INTEGER, trigger_price INTEGER, validity TEXT NOT NULL, disclosed_quantity INTEGER, status TEXT NOT NULL,
  status_reason TEXT, placed_by TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  source TEXT NOT NULL, updated_seq INTEGER);
CREATE INDEX ix_orders_client_status ON orders(client_id, status);
CREATE TABLE trades(trade_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, client_order_id TEXT NOT NULL,
  client_id TEXT NOT NULL, exchange TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, product TEXT NOT NULL,
  quantity INTEGER NOT NULL, price INTEGER NOT NULL, traded_at TEXT NOT NULL, source TEXT NOT NULL, updated_seq INTEGER);
CREATE INDEX ix_trades_client_id ON trades(client_id);
CREATE TABLE positions(client_id TEXT, exchange TEXT, symbol TEXT, product TEXT, net_quantity INTEGER NOT NULL,
  average_price INTEGER NOT NULL, last_price INTEGER NOT NULL, realised_pnl INTEGER NOT NULL, mtm INTEGER NOT NULL,
  buy_quantity INTEGER NOT NULL, sell_quantity INTEGER NOT NULL, updated_at TEXT NOT NULL, source TEXT NOT NULL,
  updated_seq INTEGER, PRIMARY KEY(client_id, exchange, symbol, product));
CREATE TABLE sync_state(id INTEGER PRIMARY KEY, last_event_seq INTEGER, last_event_at TEXT, last_applied_at TEXT);
INSERT INTO sync_state(id) VALUES (1);
"""


def _raw_row(ev) -> tuple[str, dict]:
    d = ev.data.model_dump()
    for k, v in d.items():
        if isinstance(v, Decimal):
            d[k] = int(v * 10_000)
        elif isinstance(v, datetime):
            d[k] = v.isoformat()
        elif hasattr(v, "value"):
            d[k] = v.value
    d["source"] = "STREAM"
    d["updated_seq"] = ev.seq
    return ev.type, d


def _upsert(table: str, cols: list[str], key: list[str]) -> str:
    sets = ", ".join(f"{c}=excluded.{c}" for c in cols if c not in key)
    return (
        f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) "
        f"ON CONFLICT({', '.join(key)}) DO UPDATE SET {sets} WHERE excluded.updated_seq > {table}.updated_seq"
    )


def bench_raw(path: Path, events: list) -> tuple[float, list[int]]:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.executescript(_RAW_SCHEMA)
    rows = [_raw_row(e) for e in events]  # conversion outside the timing: the baseline is the database alone
    sample = {kind: list(d) for kind, d in rows}
    sql = {
        "order": _upsert("orders", sample["order"], ["order_id"]),
        "position": _upsert("positions", sample["position"], ["client_id", "exchange", "symbol", "product"]),
        "trade": f"INSERT OR IGNORE INTO trades({', '.join(sample['trade'])}) "
        f"VALUES ({', '.join(':' + c for c in sample['trade'])})",
    }
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        chunk = rows[i : i + BATCH]
        con.execute("BEGIN IMMEDIATE")
        for kind in ("order", "trade", "position"):
            con.executemany(sql[kind], [d for k, d in chunk if k == kind])
        last = events[min(i + BATCH, len(events)) - 1]
        con.execute(
            "UPDATE sync_state SET last_event_seq=?, last_event_at=?, last_applied_at=? WHERE id=1",
            (last.seq, datetime.now(UTC).isoformat(), datetime.now(UTC).isoformat()),
        )
        con.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    counts = [
        con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("orders", "trades", "positions")
    ]
    con.close()
    return elapsed, counts


def bench_mirror(path: Path, events: list) -> tuple[float, list[int]]:
    store = open_store(path)
    with store.write() as s:  # the snapshot's clients: the mirror refuses events of any other
        s.execute(
            insert(ClientRow.__table__),
            [{"client_id": c, "name": c, "dealer_id": "dealer1"} for c in CLIENTS],
        )
    mirror = Mirror(store)
    t0 = time.perf_counter()
    for i in range(0, len(events), BATCH):
        mirror.apply(events[i : i + BATCH])
    elapsed = time.perf_counter() - t0
    con = sqlite3.connect(path)
    counts = [
        con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("orders", "trades", "positions")
    ]
    con.close()
    store.close()
    return elapsed, counts


def run_ingestion(work: Path, n: int) -> None:
    events = make_events(n)
    kinds = {k: sum(1 for e in events if e.type == k) for k in ("order", "trade", "position")}
    print(
        f"(a) ingestion: {n} events ({kinds['order']} order, {kinds['trade']} trade, {kinds['position']} position), "
        f"batches of {BATCH}, WAL + synchronous=FULL"
    )
    raw_s, raw_counts = bench_raw(work / "raw.db", events)
    mir_s, mir_counts = bench_mirror(work / "mirror.db", events)
    assert raw_counts == mir_counts, f"raw and mirror rows differ: {raw_counts} vs {mir_counts}"
    print(f"  raw sqlite3 executemany upserts  {n / raw_s:>10,.0f} events/s  ({raw_s:.2f} s)")
    print(f"  Mirror.apply (SQLAlchemy Core)   {n / mir_s:>10,.0f} events/s  ({mir_s:.2f} s)")
    print(
        f"  mirror time / raw time           {mir_s / raw_s:>10.1f}x   "
        f"(rows: {mir_counts[0]} orders, {mir_counts[1]} trades, {mir_counts[2]} positions in both)"
    )


# --------------------------------------------------------------------------- (b) staleness


def _event_time(d: dict) -> datetime:
    return datetime.fromisoformat((d.get("updated_at") or d["traded_at"]).replace("Z", "+00:00"))


def _pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def run_staleness(sim: SimProcess, seconds: float, user: str) -> None:
    stale: list[float] = []
    raw_lat: list[float] = []
    store = open_store(Path(sim.workdir) / "lifeboat.db")
    async with BackendClient(sim.url) as client:
        await client.login(user, "demo")
        runtime = Runtime(store, client)
        measuring = False

        def on_applied(events, at: datetime) -> None:
            if measuring:
                for ev in events:
                    data = ev.data
                    t = getattr(data, "updated_at", None) or data.traded_at
                    stale.append((at - t).total_seconds())

        runtime.applied_seq_callbacks.append(on_applied)

        async def raw_reader() -> None:
            async with connect(
                stream_url(sim.url, None),
                additional_headers={"Authorization": f"Bearer {client.token}"},
                compression=None,
                ping_interval=None,
            ) as ws:
                async for raw in ws:
                    now = datetime.now(UTC)
                    msg = json.loads(raw)
                    if measuring and msg["type"] in ("order", "trade", "position"):
                        raw_lat.append((now - _event_time(msg["data"])).total_seconds())

        run_task = asyncio.create_task(runtime.run())
        raw_task = asyncio.create_task(raw_reader())
        deadline = time.monotonic() + 30
        while not runtime.status.connected:
            if run_task.done():
                run_task.result()
            if time.monotonic() > deadline:
                raise RuntimeError("runtime never connected")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # warm-up, discarded
        applied0, batches0 = runtime.mirror.applied + runtime.mirror.skipped, runtime.status.batches
        measuring = True
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.monotonic() - t0
        events = runtime.mirror.applied + runtime.mirror.skipped - applied0
        batches = runtime.status.batches - batches0
        runtime.stop()
        raw_task.cancel()
        await asyncio.gather(run_task, raw_task, return_exceptions=True)
    store.close()
    ms = lambda x: f"{x * 1000:8.1f} ms"  # noqa: E731
    print(
        f"(b) staleness over {elapsed:.1f} s as {user}: {events / elapsed:,.0f} events/s applied "
        f"in {batches} batches ({events / max(batches, 1):.1f} events/batch), resnapshots {runtime.status.resnapshots}"
    )
    print(
        f"  raw websockets receive latency  p50 {ms(_pct(raw_lat, 50))}  p99 {ms(_pct(raw_lat, 99))}  "
        f"(n={len(raw_lat)}, baseline, no apply)"
    )
    print(
        f"  mirror staleness (commit)       p50 {ms(_pct(stale, 50))}  p99 {ms(_pct(stale, 99))}  "
        f"max {ms(max(stale) if stale else float('nan'))}  (n={len(stale)})"
    )
    if raw_lat and stale:
        print(
            f"  ratio mirror / raw              p50 {_pct(stale, 50) / max(_pct(raw_lat, 50), 1e-6):5.1f}x  "
            f"p99 {_pct(stale, 99) / max(_pct(raw_lat, 99), 1e-6):5.1f}x"
        )
    p99 = _pct(stale, 99)
    print(
        f"  goal p99 < 1 s: {'MET' if p99 < 1.0 else 'NOT MET'} ({p99 * 1000:.0f} ms); mean "
        f"{statistics.fmean(stale) * 1000 if stale else float('nan'):.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events and 5 s of staleness")
    parser.add_argument("-n", type=int, default=None, help="events for the ingestion bench")
    parser.add_argument("--seconds", type=float, default=None, help="staleness window")
    parser.add_argument(
        "--activity",
        type=float,
        default=470.0,
        help="mainsim background orders/s (about 1.1 events each observed: ~500 events/s)",
    )
    parser.add_argument("--user", default="super1", help="whose scope to mirror (super1 sees every client)")
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 20_000)
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    with tempfile.TemporaryDirectory(prefix="lb-bench-mirror-") as tmp:
        work = Path(tmp)
        run_ingestion(work, n)
        (work / "sim").mkdir()
        sim = SimProcess(
            db=work / "sim" / "mainsim.db",
            workdir=work / "sim",
            extra_args=["--activity", str(args.activity)],
        ).start()
        try:
            asyncio.run(run_staleness(sim, seconds, args.user))
        finally:
            sim.kill()


if __name__ == "__main__":
    main()
