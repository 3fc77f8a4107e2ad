"""Bench: what backend_client costs over raw httpx / raw websockets, in one run.

Why it exists: the client validates every reply and maps every failure, and the
stream client validates every message; a dealer must not feel that.  The machine is
shared and noisy, so each figure is printed beside a same-run baseline as a ratio.

    python bench/bench_client.py           # N=1000 orders, 5 s of stream
    python bench/bench_client.py --quick   # N=200, 2 s

Orders: sequential POST /orders through BackendClient.place_order vs raw
httpx.AsyncClient.post of the same JSON to the same mainsim, in alternating blocks
(unique client_order_ids).  Stream: StreamClient vs a raw websockets reader of the
same mainsim stream (busy: --activity 200 orders/s, --tick-ms 5) over the same window, and the
per-message decode cost (pydantic validation vs json.loads) on the frames received.
Detection: how long the stream client takes to report a SIGSTOPped (hung) and a
kill -9ed mainsim, against its silence_timeout.
Bounds: what the total deadline and the streamed size cap cost per request: GET
/positions (~20 KB) through BackendClient.request vs the same client's buffered
httpx request with the same status check and validation (the path before the
bounds), in alternating blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from pydantic import TypeAdapter
from websockets.asyncio.client import connect

from backend_client.client import BackendClient
from backend_client.errors import BackendError
from backend_client.stream import StreamClient, StreamStatus, stream_url
from contract import wire
from tests.simproc import SimProcess


def _resting_orders(instruments: list[wire.Instrument], client_id: str, n: int, tag: str) -> list[dict]:
    """Limit orders at the band edges: valid, and they rest (no fills, positions unchanged)."""
    eq = [i for i in instruments if i.exchange == wire.Exchange.NSE and i.instrument_type == "EQ"]
    eq.sort(key=lambda i: i.last_price)
    inst = eq[0]  # the cheapest: stays inside every value limit
    tick = inst.tick_size
    buy_price = ((inst.lower_band + tick - Decimal("0.000001")) // tick) * tick
    sell_price = (inst.upper_band // tick) * tick
    out = []
    for k in range(n):
        side = "BUY" if k % 2 == 0 else "SELL"
        out.append(
            wire.OrderRequest(
                client_order_id=f"B{tag}{k:06d}",
                client_id=client_id,
                exchange=inst.exchange,
                symbol=inst.symbol,
                side=side,
                quantity=inst.lot_size,
                product="MIS",
                order_type="LIMIT",
                price=buy_price if side == "BUY" else sell_price,
            ).model_dump(mode="json", exclude_none=True)
        )
    return out


async def bench_orders(sim: SimProcess, n: int, block: int = 100) -> None:
    async with BackendClient(sim.url) as client:
        session = await client.login("dealer1", "demo")
        instruments = await client.instruments()
        client_id = session.user.client_ids[0]
        tag = uuid.uuid4().hex[:6]
        ours = _resting_orders(instruments, client_id, n + 20, tag + "c")
        raws = _resting_orders(instruments, client_id, n + 20, tag + "r")
        headers = {"Authorization": f"Bearer {client.token}"}
        async with httpx.AsyncClient(
            base_url=sim.url + wire.API_PREFIX, headers=headers, timeout=httpx.Timeout(5.0, connect=2.0)
        ) as raw:
            failures = {"client": 0, "raw": 0}
            for body in raws[:20]:  # warm-up both paths
                await raw.post("/orders", json=body)
            for body in ours[:20]:
                await client.place_order(wire.OrderRequest.model_validate(body))
            ours, raws = ours[20:], raws[20:]
            requests = [wire.OrderRequest.model_validate(b) for b in ours]
            spent = {"client": 0.0, "raw": 0.0}
            for start in range(0, n, block):
                t0 = time.perf_counter()
                for body in raws[start : start + block]:
                    r = await raw.post("/orders", json=body)
                    if r.status_code not in (200, 201):
                        failures["raw"] += 1
                t1 = time.perf_counter()
                for req in requests[start : start + block]:
                    try:
                        await client.place_order(req)
                    except BackendError:
                        failures["client"] += 1
                t2 = time.perf_counter()
                spent["raw"] += t1 - t0
                spent["client"] += t2 - t1
            sample = (await raw.get(f"/orders/by-client-id/{raws[0]['client_order_id']}")).content
    raw_rate, client_rate = n / spent["raw"], n / spent["client"]
    print(f"orders: N={n} sequential POST /orders, alternating blocks of {block}")
    print(f"  raw httpx.AsyncClient     {raw_rate:8.0f} orders/s   (non-2xx: {failures['raw']})")
    print(f"  BackendClient.place_order {client_rate:8.0f} orders/s   (errors: {failures['client']})")
    print(f"  ratio client/raw          {client_rate / raw_rate:8.2f}")
    adapter, reps = TypeAdapter(wire.Order), 5000
    t0 = time.perf_counter()
    for _ in range(reps):
        json.loads(sample)
    t1 = time.perf_counter()
    for _ in range(reps):
        adapter.validate_json(sample)
    t2 = time.perf_counter()
    print(
        f"  reply decode per order: json.loads {(t1 - t0) / reps * 1e6:.1f} us, "
        f"wire.Order validation {(t2 - t1) / reps * 1e6:.1f} us "
        f"(vs {1e6 / client_rate:.0f} us per round trip)"
    )


async def bench_stream(sim: SimProcess, seconds: float, activity: float, tick_ms: int) -> None:
    async with BackendClient(sim.url) as client:
        await client.login("super1", "demo")
        token = client.token
    frames: list[str | bytes] = []
    counts = {"client": 0, "raw": 0}
    stop_at = time.monotonic() + seconds

    async def ours():
        stream = StreamClient(sim.url, token, silence_timeout=2.0)
        started = False
        async for item in stream.messages():
            if isinstance(item, StreamStatus):
                continue
            if time.monotonic() >= stop_at:
                stream.stop()
                break
            started = True
            counts["client"] += 1
        return started

    async def raw():
        async with connect(
            stream_url(sim.url, None),
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            ping_interval=None,
            proxy=None,
        ) as ws:
            while time.monotonic() < stop_at:
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=max(0.01, stop_at - time.monotonic()))
                except TimeoutError:
                    break
                json.loads(text)
                counts["raw"] += 1
                if len(frames) < 20000:
                    frames.append(text)

    await asyncio.gather(ours(), raw())
    print(
        f"stream: both readers on one mainsim stream for {seconds:g} s (--activity {activity:g}, --tick-ms {tick_ms})"
    )
    print(f"  raw websockets + json.loads {counts['raw'] / seconds:8.0f} msg/s")
    print(f"  StreamClient (validated)    {counts['client'] / seconds:8.0f} msg/s")
    if counts["raw"]:
        print(f"  ratio client/raw            {counts['client'] / counts['raw']:8.2f}")
    if frames:
        adapter = TypeAdapter(wire.StreamMessage)
        t0 = time.perf_counter()
        for f in frames:
            json.loads(f)
        t1 = time.perf_counter()
        for f in frames:
            adapter.validate_json(f)
        t2 = time.perf_counter()
        loads_rate, valid_rate = len(frames) / (t1 - t0), len(frames) / (t2 - t1)
        kinds = sorted({json.loads(f)["type"] for f in frames[:2000]})
        print(f"  decode capacity on {len(frames)} received frames ({', '.join(kinds)}):")
        print(f"    json.loads                {loads_rate:8.0f} msg/s")
        print(f"    wire.StreamMessage        {valid_rate:8.0f} msg/s   ratio {valid_rate / loads_rate:.2f}")


async def bench_bounds(sim: SimProcess, n: int, block: int = 50) -> None:
    from backend_client.replies import check_status, decode_body

    adapter = TypeAdapter(list[wire.Position])
    async with BackendClient(sim.url) as client:
        await client.login("dealer1", "demo")
        headers = {"Authorization": f"Bearer {client.token}"}

        async def bounded():
            await client.request("GET", "/positions", adapter, safe=True)

        async def buffered():  # no deadline, no cap: the whole reply buffered by httpx, then checked
            response = await client._http.request("GET", "/positions", headers=headers)
            check_status(response, "GET", "/positions", (200,))
            decode_body(response, adapter, "GET", "/positions")

        spent = {"bounded": 0.0, "buffered": 0.0}
        for _ in range(5):  # warm both paths
            await bounded()
            await buffered()
        for start in range(0, n, block):
            for name, call in (("bounded", bounded), ("buffered", buffered)):
                t0 = time.perf_counter()
                for _ in range(min(block, n - start)):
                    await call()
                spent[name] += time.perf_counter() - t0
    print(f"bounds: N={n} sequential GET /positions, alternating blocks of {block}")
    print(f"  buffered (no deadline, no cap) {spent['buffered'] / n * 1e3:8.3f} ms/request")
    print(f"  request() (deadline + cap)     {spent['bounded'] / n * 1e3:8.3f} ms/request")
    print(f"  ratio bounded/buffered         {spent['bounded'] / spent['buffered']:8.2f}")


async def bench_detection(sim: SimProcess, silence_timeout: float = 0.3, rounds: int = 3) -> None:
    """How fast the stream client reports a hung (SIGSTOP) and a killed (kill -9) server."""
    import os
    import signal

    async with BackendClient(sim.url) as client:
        await client.login("dealer1", "demo")
        token = client.token
    stream = StreamClient(
        sim.url, token, silence_timeout=silence_timeout, backoff_initial=0.05, backoff_max=0.2
    )
    items = stream.messages()

    async def next_status(connected: bool) -> float:
        async for item in items:
            if isinstance(item, StreamStatus) and item.connected is connected:
                return time.monotonic()
        raise RuntimeError("stream ended")

    await next_status(True)
    hang, kill, back = [], [], []
    for _ in range(rounds):
        await asyncio.sleep(0.3)
        assert sim.proc is not None
        t0 = time.monotonic()
        os.kill(sim.proc.pid, signal.SIGSTOP)
        try:
            hang.append(await next_status(False) - t0)
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        await next_status(True)
    for _ in range(rounds):
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await asyncio.to_thread(sim.kill)
        kill.append(await next_status(False) - t0)
        t1 = time.monotonic()
        await asyncio.to_thread(sim.start)
        back.append(await next_status(True) - t1)
    stream.stop()
    await items.aclose()
    ms = lambda xs: "/".join(f"{x * 1000:.0f}" for x in xs)  # noqa: E731
    print(f"detection: stream client, silence_timeout {silence_timeout * 1000:.0f} ms ({rounds} rounds, ms)")
    print(f"  hung (SIGSTOP) reported after     {ms(hang)}")
    print(f"  killed (kill -9) reported after   {ms(kill)}")
    print(f"  reconnected after restart began   {ms(back)}   (includes mainsim start-up)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (N=200 orders, 2 s of stream)")
    parser.add_argument("-n", type=int, default=None, help="orders per path")
    parser.add_argument("--seconds", type=float, default=None, help="stream window")
    parser.add_argument("--tick-ms", type=int, default=5, help="mainsim tick interval for the stream bench")
    parser.add_argument(
        "--activity", type=float, default=200.0, help="mainsim background orders/s for the stream bench"
    )
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 1000)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        work = Path(tmp)
        (work / "a").mkdir()
        (work / "b").mkdir()
        sim = SimProcess(db=work / "a" / "mainsim.db", workdir=work / "a").start()
        try:
            asyncio.run(bench_orders(sim, n))
            asyncio.run(bench_bounds(sim, n))
            asyncio.run(bench_detection(sim))
        finally:
            sim.kill()
        busy = SimProcess(
            db=work / "b" / "mainsim.db",
            workdir=work / "b",
            extra_args=["--activity", str(args.activity), "--tick-ms", str(args.tick_ms)],
        ).start()
        try:
            asyncio.run(bench_stream(busy, seconds, args.activity, args.tick_ms))
        finally:
            busy.kill()


if __name__ == "__main__":
    main()
