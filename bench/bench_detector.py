"""Failure detector figures (issue 4, P1 and P2), each with a same-run baseline.

P1  main killed (kill -9) -> the runtime's detector decides BACKUP: p50/p99 over N
    trials (goal p99 <= 100 ms).  Baseline: a raw websockets client on the same
    server, time until it sees the connection close.
P2  main hung (SIGSTOP) -> BACKUP: p50/p99 (goal p99 <= 3 heartbeat intervals =
    750 ms at 250 ms).  Baseline: a raw websockets client with a plain 750 ms
    no-message timer, time until it fires.
J   false switches to BACKUP under 100 +- 80 ms jitter (TCP fault proxy) over S
    seconds (goal 0).  Baseline: how often a raw 750 ms no-message timer on the same
    link fires, and the largest gap between messages it saw.

Times are from the signal to the detector's decision (its transition callback, on
the runtime's loop); the ConsoleState/audit commit follows in a worker thread.  The
runtime runs in-process on this loop, as `lifeboat agent` runs it; the bench uses a
1 s dwell so the console is back ONLINE quickly between trials (the dwell does not
affect how fast it falls).

    python bench/bench_detector.py            # 20 trials each, 60 s of jitter
    python bench/bench_detector.py --quick    # 5 trials each, 10 s of jitter
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from backend_client.client import BackendClient
from backend_client.detector import Detector, Mode
from backend_client.stream import stream_url
from localstore.db import open_store
from mainsim.faultproxy import ThreadedFaultProxy
from sync.runtime import Runtime
from tests.simproc import SimProcess

HEARTBEAT_S = 0.25
RAW_SILENCE_S = 3 * HEARTBEAT_S


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def summary(name: str, ours: list[float], raw: list[float], goal: str) -> None:
    p50, p99 = pct(ours, 50), pct(ours, 99)
    r50, r99 = pct(raw, 50), pct(raw, 99)
    print(
        f"{name}: detector p50 {p50:7.1f} ms  p99 {p99:7.1f} ms   |  baseline p50 {r50:7.1f} ms  "
        f"p99 {r99:7.1f} ms  |  ratio p50 {p50 / max(r50, 1e-6):5.2f}x  p99 {p99 / max(r99, 1e-6):5.2f}x  "
        f"(n={len(ours)}; goal {goal})"
    )


class Agent:
    """The runtime in-process, with the instant of each mode decision recorded."""

    def __init__(self, url: str, store_path: Path):
        self.url, self.store_path = url, store_path
        self.decided: list[tuple[Mode, float]] = []

    async def start(self) -> Agent:
        self.client = BackendClient(self.url)
        session = await self.client.login("dealer1", "demo")
        self.token = session.access_token
        self.store = open_store(self.store_path)
        self.detector = Detector(now=time.monotonic(), min_dwell=1.0)
        self.detector.callbacks.append(lambda t: self.decided.append((t.to_mode, time.monotonic())))
        self.runtime = Runtime(self.store, self.client, detector=self.detector, user_id="dealer1")
        self.task = asyncio.create_task(self.runtime.run())
        await self.until(lambda: self.runtime.status.connected and self.detector.mode is Mode.ONLINE, 30)
        return self

    async def until(self, cond, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if self.task.done():
                self.task.result()
                raise RuntimeError("runtime ended")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out; mode {self.detector.mode}, status {self.runtime.status}")
            await asyncio.sleep(0.005)

    def first(self, mode: Mode, after: float) -> float | None:
        return next((at for m, at in self.decided if m is mode and at >= after), None)

    async def decided_at(
        self, mode: Mode, after: float, timeout: float, also: Callable[[], object] = lambda: True
    ) -> float:
        """Wait until the detector decides ``mode`` at or after ``after`` and ``also()``
        holds; the instant of that decision."""
        await self.until(lambda: self.first(mode, after) is not None and also(), timeout)
        at = self.first(mode, after)
        assert at is not None
        return at

    async def stop(self) -> None:
        self.runtime.stop()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.client.aclose()
        self.store.close()


async def raw_close_watch(url: str, token: str, ready: asyncio.Event) -> float:
    """Baseline for P1: time.monotonic() when a plain websockets client sees the close."""
    async with connect(
        stream_url(url, None),
        additional_headers={"Authorization": f"Bearer {token}"},
        ping_interval=None,
        compression=None,
    ) as ws:
        ready.set()
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
    return time.monotonic()


async def raw_silence_watch(
    url: str,
    token: str,
    ready: asyncio.Event,
    *,
    forever: bool = False,
    gaps: list[float] | None = None,
    fired_at: list[float] | None = None,
) -> int:
    """Baseline for P2/J: a plain 750 ms no-message timer.  Appends the instant it fires
    to ``fired_at`` and ends (closing a hung peer's socket waits out the close timeout,
    so the caller reads ``fired_at``, not the return), or (``forever``) counts firings
    until cancelled, recording the gaps between messages."""
    fired = 0
    async with connect(
        stream_url(url, None),
        additional_headers={"Authorization": f"Bearer {token}"},
        ping_interval=None,
        compression=None,
    ) as ws:
        ready.set()
        last = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(ws.recv(), timeout=RAW_SILENCE_S)
                now = time.monotonic()
                if gaps is not None:
                    gaps.append(now - last)
                last = now
            except TimeoutError:
                if not forever:
                    assert fired_at is not None, "fired_at is required unless forever"
                    fired_at.append(time.monotonic())
                    return 1
                fired += 1
            except asyncio.CancelledError:
                return fired


async def bench_killed(workdir: Path, trials: int) -> None:
    ours, raw = [], []
    sim = SimProcess(db=workdir / "p1-main.db", workdir=workdir, heartbeat_ms=int(HEARTBEAT_S * 1000))
    sim.start()
    try:
        for i in range(trials):
            agent = await Agent(sim.url, workdir / f"p1-{i}.db").start()
            ready = asyncio.Event()
            watch = asyncio.create_task(raw_close_watch(sim.url, agent.token, ready))
            await ready.wait()
            await asyncio.sleep(0.3)
            assert sim.proc is not None
            t0 = time.monotonic()
            os.kill(sim.proc.pid, signal.SIGKILL)
            backup_at = await agent.decided_at(Mode.BACKUP, t0, 10)
            closed = await asyncio.wait_for(watch, 10)
            ours.append((backup_at - t0) * 1000)
            raw.append((closed - t0) * 1000)
            await agent.stop()
            sim.proc.wait(10)
            sim.start()
    finally:
        sim.kill()
    summary("P1 killed -> BACKUP", ours, raw, "p99 <= 100 ms")


async def bench_hung(workdir: Path, trials: int) -> None:
    ours: list[float] = []
    raw: list[float] = []
    sim = SimProcess(db=workdir / "p2-main.db", workdir=workdir, heartbeat_ms=int(HEARTBEAT_S * 1000))
    sim.start()
    agent = await Agent(sim.url, workdir / "p2.db").start()
    try:
        for _ in range(trials):
            await agent.until(
                lambda: agent.detector.mode is Mode.ONLINE and agent.runtime.status.connected, 30
            )
            ready = asyncio.Event()
            fired_at: list[float] = []
            watch = asyncio.create_task(raw_silence_watch(sim.url, agent.token, ready, fired_at=fired_at))
            await ready.wait()
            await asyncio.sleep(0.3 + (len(ours) % 4) * 0.06)  # vary the phase against the heartbeat
            assert sim.proc is not None
            t0 = time.monotonic()
            os.kill(sim.proc.pid, signal.SIGSTOP)
            try:
                backup_at = await agent.decided_at(Mode.BACKUP, t0, 10, also=partial(bool, fired_at))
            finally:
                os.kill(sim.proc.pid, signal.SIGCONT)
            await asyncio.wait_for(watch, 15)
            ours.append((backup_at - t0) * 1000)
            raw.append((fired_at[0] - t0) * 1000)
    finally:
        await agent.stop()
        sim.kill()
    summary("P2 hung -> BACKUP", ours, raw, f"p99 <= {RAW_SILENCE_S * 1000:.0f} ms")


async def bench_jitter(workdir: Path, seconds: float) -> None:
    sim = SimProcess(db=workdir / "j-main.db", workdir=workdir, heartbeat_ms=int(HEARTBEAT_S * 1000))
    sim.start()
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port, latency_ms=100, jitter_ms=80, seed=11).start()
    agent = await Agent(proxy.url, workdir / "j.db").start()
    try:
        gaps: list[float] = []
        ready = asyncio.Event()
        watch = asyncio.create_task(raw_silence_watch(proxy.url, agent.token, ready, forever=True, gaps=gaps))
        await ready.wait()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        watch.cancel()
        raw_fired = await asyncio.gather(watch, return_exceptions=True)
        to_backup = sum(1 for m, at in agent.decided if m is Mode.BACKUP and at >= t0)
        suspects = sum(1 for m, at in agent.decided if m is Mode.SUSPECT and at >= t0)
        print(
            f"J jitter 100+-80 ms for {seconds:.0f} s: detector switches to BACKUP {to_backup} (goal 0), "
            f"SUSPECT shown {suspects} times, probes {agent.runtime.probes}  |  baseline raw "
            f"{RAW_SILENCE_S * 1000:.0f} ms timer fired {raw_fired[0]} times, largest message gap "
            f"{max(gaps) * 1000 if gaps else float('nan'):.0f} ms over {len(gaps)} messages"
        )
    finally:
        await agent.stop()
        proxy.stop()
        sim.kill()


async def main_async(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-detector-") as tmp:
        workdir = Path(tmp)
        trials = args.trials or (5 if args.quick else 20)
        seconds = args.seconds or (10.0 if args.quick else 60.0)
        await bench_killed(workdir, trials)
        await bench_hung(workdir, trials)
        await bench_jitter(workdir, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 trials each and 10 s of jitter")
    parser.add_argument(
        "--trials", type=int, default=0, help="trials for P1 and P2 (default 20; 5 with --quick)"
    )
    parser.add_argument(
        "--seconds", type=float, default=0, help="seconds of jitter (default 60; 10 with --quick)"
    )
    args = parser.parse_args()
    if args.trials < 0 or args.seconds < 0:
        parser.error("--trials and --seconds must be >= 0")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
