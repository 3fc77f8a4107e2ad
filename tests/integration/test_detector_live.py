"""The failure detector inside the runtime, against a real mainsim and a real SQLite store.

Main is killed (kill -9), hung (SIGSTOP), brought back, flapped and jittered through
the TCP fault proxy (mainsim.faultproxy; toxiproxy and tc netem are not available
here).  Time bounds are loose sanity bounds only; the figures are in
bench/bench_detector.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from backend_client.client import BackendClient
from backend_client.detector import Detector, Mode, Transition
from contract import clock
from localstore import audit
from localstore.db import Store, open_store
from localstore.models import AuditRow, ConsoleState, JournalEntry, JournalKind, JournalState
from mainsim.faultproxy import ThreadedFaultProxy
from sync.runtime import Runtime

PASSWORD = "demo"


class AgentThread:
    """A Runtime (mirror + detector) for ``user`` on its own event loop in a thread, as
    `lifeboat agent` runs it.  Committed mode changes are collected in ``changes``."""

    def __init__(self, store: Store, url: str, *, min_dwell: float = 2.0, user: str = "dealer1"):
        self.store, self.url, self.user, self.min_dwell = store, url, user, min_dwell
        self.runtime: Runtime | None = None
        self.error: BaseException | None = None
        self.changes: list[Transition] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="agent", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - the thread's failure, reported by wait_for / stop
            self.error = exc

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with BackendClient(self.url) as client:
            await client.login(self.user, PASSWORD)
            detector = Detector(now=time.monotonic(), min_dwell=self.min_dwell)
            runtime = Runtime(self.store, client, detector=detector, user_id=self.user)
            runtime.mode_callbacks.append(self.changes.append)
            self.runtime = runtime
            await runtime.run()

    def start(self) -> AgentThread:
        self._thread.start()
        self.wait_for(lambda r: r.status.connected and r.detector.mode is Mode.ONLINE, "connected and ONLINE")
        return self

    def wait_for(self, cond, what: str, timeout: float = 20.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            assert self.error is None, f"runtime failed: {self.error!r}"
            if self.runtime is not None and cond(self.runtime):
                return time.monotonic() - t0
            time.sleep(0.005)
        raise AssertionError(
            f"not {what} after {timeout} s: mode {self.runtime and self.runtime.mode}, changes {self.changes}"
        )

    def wait_mode(self, mode: Mode, timeout: float = 20.0) -> float:
        return self.wait_for(lambda r: r.detector.mode is mode, mode.value, timeout)

    def stop(self) -> None:
        if self._loop is not None and self.runtime is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.runtime.stop)
        self._thread.join(30)
        if self._thread.is_alive():  # say where it is stuck: the next failure is then diagnosable
            import sys
            import traceback

            frame = sys._current_frames().get(self._thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)) if frame else "?"
            tasks = []
            if self._loop is not None:
                for t in asyncio.all_tasks(self._loop):
                    tasks.append(f"{t.get_name()}: {t.get_coro()}")
            raise AssertionError(f"runtime did not stop in 30 s; thread at:\n{stack}\ntasks: {tasks}")


def console_state(store: Store) -> ConsoleState:
    with store.read() as s:
        return s.get(ConsoleState, 1)


def mode_rows(store: Store) -> list[dict]:
    with store.read() as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.action == "mode_change").order_by(AuditRow.id))
        return [{"mode": r.mode, **json.loads(r.payload)} for r in rows]


def wait_recorded(store: Store, mode: Mode, timeout: float = 10.0) -> ConsoleState:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        state = console_state(store)
        if state.mode == mode.value:
            return state
        time.sleep(0.02)
    raise AssertionError(f"ConsoleState never recorded {mode.value}: {console_state(store).mode}")


def into_and_out_of_backup(changes: list[Transition]) -> tuple[list[float], list[float]]:
    into = [c.at for c in changes if c.to_mode is Mode.BACKUP and c.from_mode is not Mode.BACKUP]
    out = [c.at for c in changes if c.from_mode is Mode.BACKUP and c.to_mode is not Mode.BACKUP]
    return into, out


def assert_at_most_one_switch_each_way_per_dwell(changes: list[Transition], dwell: float) -> None:
    for times in into_and_out_of_backup(changes):
        for a, b in itertools.pairwise(times):
            assert b - a >= dwell - 0.01, f"two switches the same way {b - a:.3f} s apart: {changes}"


# ----------------------------------------------------------------------------- killed, hung, back


def test_killed_main_goes_to_backup_at_once_and_comes_back_through_recovering(sim, tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    agent = AgentThread(store, sim.url).start()
    try:
        sim.kill()  # kill -9
        took = agent.wait_mode(Mode.BACKUP, timeout=5)
        assert took < 2.0, f"BACKUP only after {took:.3f} s"  # loose: the bench measures it
        state = wait_recorded(store, Mode.BACKUP)
        assert state.mode_since is not None and state.mode_reason
        rows = mode_rows(store)
        assert rows[-1]["to"] == "BACKUP" and rows[-1]["mode"] == "BACKUP" and rows[-1]["reason"]
        assert agent.runtime.detector.transitions[-1].reason == state.mode_reason

        sim.start()  # same port, same database
        agent.wait_mode(Mode.ONLINE, timeout=20)
        assert wait_recorded(store, Mode.ONLINE).mode_reason == "journal replayed"
        agent.wait_for(lambda r: agent.changes[-1].to_mode is Mode.ONLINE, "ONLINE announced")
        seen = [(c.from_mode, c.to_mode) for c in agent.changes]
        last_backup = max(i for i, (_, to) in enumerate(seen) if to is Mode.BACKUP)
        assert seen[last_backup + 1 :] == [(Mode.BACKUP, Mode.RECOVERING), (Mode.RECOVERING, Mode.ONLINE)], (
            seen
        )
        with store.read() as s:
            assert audit.verify(s).ok
        agent.wait_for(lambda r: r.status.connected, "stream reconnected")
    finally:
        agent.stop()
    assert agent.error is None


def test_hung_main_goes_to_backup(sim, tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    agent = AgentThread(store, sim.url).start()
    try:
        os.kill(sim.proc.pid, signal.SIGSTOP)
        try:
            took = agent.wait_mode(Mode.BACKUP, timeout=10)
            assert took < 3.0, f"BACKUP only after {took:.3f} s"
            assert "silent" in agent.runtime.detector.reason
            assert wait_recorded(store, Mode.BACKUP).mode == "BACKUP"
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        agent.wait_mode(Mode.ONLINE, timeout=20)
    finally:
        agent.stop()
    assert agent.error is None


@pytest.mark.dates
def test_journal_written_in_backup_is_replayed_before_online(sim, tmp_path):
    """RECOVERING ends through the replay: an entry journaled during the outage is
    decided (here held: it is from an earlier trading day) before the console is ONLINE,
    and a held entry waits for a person without keeping the console RECOVERING."""
    from tests.cli_env import enrolled_for_test, raw_get, raw_session

    token = raw_session(sim.url, "dealer1")["access_token"]
    resting = next(o for o in raw_get(sim.url, token, "/orders") if o["status"] == "OPEN")
    # the agent never logs in online here: the store is taken as enrolled, or the replay would refuse it
    store = enrolled_for_test(open_store(tmp_path / "lifeboat.db"))
    agent = AgentThread(store, sim.url, min_dwell=1.0).start()
    try:
        os.kill(sim.proc.pid, signal.SIGSTOP)
        try:
            agent.wait_mode(Mode.BACKUP, timeout=10)
            with store.write() as s:
                s.add(
                    JournalEntry(
                        kind=JournalKind.CANCEL,
                        client_order_id="T-1",
                        client_id=resting["client_id"],
                        target_order_id=resting["order_id"],
                        user_id="dealer1",
                        mode="BACKUP",
                        trading_date=clock.today_ist() - timedelta(days=1),  # the day before main's
                        console_id=store.console_id,
                    )
                )
        finally:
            os.kill(sim.proc.pid, signal.SIGCONT)
        agent.wait_mode(Mode.ONLINE, timeout=30)
        assert Mode.RECOVERING in [c.to_mode for c in agent.changes]
        with store.read() as s:
            entry = s.scalars(select(JournalEntry)).one()
        assert entry.state is JournalState.HELD, (entry.state, entry.state_reason)
        assert "trading day" in (entry.state_reason or "")
        still = [o for o in raw_get(sim.url, token, "/orders") if o["order_id"] == resting["order_id"]]
        assert still[0]["status"] == "OPEN"  # held, not sent
    finally:
        agent.stop()


def test_supervisor_override_in_the_store_is_applied_and_released(sim, tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    agent = AgentThread(store, sim.url).start()
    try:
        with store.write() as s:
            state = s.get(ConsoleState, 1)
            state.forced_mode, state.forced_by = "BACKUP", "super1"
        agent.wait_mode(Mode.BACKUP, timeout=10)
        assert wait_recorded(store, Mode.BACKUP)
        assert mode_rows(store)[-1]["forced_by"] == "super1"
        with store.write() as s:
            s.get(ConsoleState, 1).forced_mode = None
        agent.wait_mode(Mode.ONLINE, timeout=10)  # via RECOVERING: nothing journaled
        agent.wait_for(lambda r: agent.changes[-1].to_mode is Mode.ONLINE, "ONLINE announced")
        assert [c.to_mode for c in agent.changes][-2:] == [Mode.RECOVERING, Mode.ONLINE]
    finally:
        agent.stop()


def test_main_down_at_start_runs_in_backup_then_recovers(sim, tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port).start()
    agent = AgentThread(store, proxy.url)
    try:
        # log in through the proxy, then refuse before the runtime's first snapshot
        agent._thread.start()
        agent.wait_for(lambda r: True, "created")
        proxy.set_mode("refuse")
        agent.wait_mode(Mode.BACKUP, timeout=10)
        proxy.set_mode("none")
        agent.wait_mode(Mode.ONLINE, timeout=20)
        agent.wait_for(lambda r: r.status.connected and r.status.resnapshots >= 1, "snapshot taken")
    finally:
        agent.stop()
        proxy.stop()


# ----------------------------------------------------------------------------- flapping and jitter


def flap(sim, tmp_path, seconds: float, period: float = 2.0) -> None:
    store = open_store(tmp_path / "lifeboat.db")
    with ThreadedFaultProxy("127.0.0.1", sim.port) as proxy:
        agent = AgentThread(store, proxy.url, min_dwell=5.0).start()
        try:
            t0 = time.monotonic()
            down = False
            while time.monotonic() - t0 < seconds:
                down = not down
                proxy.set_mode("refuse" if down else "none")
                time.sleep(period)
            proxy.set_mode("none")
            into, _out = into_and_out_of_backup(agent.changes)
            assert into, f"the link refused half the time: it must have gone to BACKUP ({agent.changes})"
            assert_at_most_one_switch_each_way_per_dwell(agent.changes, 5.0)
            assert len(into) <= seconds / 5.0 + 1
        finally:
            agent.stop()
    assert agent.error is None


def test_flapping_link_never_oscillates(sim, tmp_path):
    flap(sim, tmp_path, seconds=12.0)


@pytest.mark.soak
@pytest.mark.timeout(200)
def test_flapping_link_for_a_minute(sim, tmp_path):
    flap(sim, tmp_path, seconds=60.0)


def jitter(sim, tmp_path, seconds: float) -> None:
    store = open_store(tmp_path / "lifeboat.db")
    with ThreadedFaultProxy("127.0.0.1", sim.port, latency_ms=100, jitter_ms=80, seed=4) as proxy:
        agent = AgentThread(store, proxy.url, min_dwell=5.0).start()
        try:
            time.sleep(seconds)
            assert agent.runtime.probes >= seconds / 2  # the detector kept probing through the proxy
            assert all(c.to_mode is not Mode.BACKUP for c in agent.changes), agent.changes
            assert agent.runtime.detector.mode in (Mode.ONLINE, Mode.SUSPECT)
            assert agent.runtime.status.connected
        finally:
            agent.stop()
    assert agent.error is None


def test_jitter_100_80_ms_never_switches_to_backup(sim, tmp_path):
    jitter(sim, tmp_path, seconds=15.0)


@pytest.mark.soak
@pytest.mark.timeout(400)
def test_jitter_for_minutes_never_switches_to_backup(sim, tmp_path):
    jitter(sim, tmp_path, seconds=180.0)


# ----------------------------------------------------------------------------- one-shot probe


def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: a connect is refused
    return port


def test_one_shot_probe_real_server_refused_port_and_silent_listener(sim):
    """The one-shot probe (a CLI command): a live mainsim is ok; a refused port is seen by
    the bare TCP connect, before any HTTP client; a listener that accepts and never
    answers still ends in "timeout" within the probe's budget."""
    import socket

    from backend_client.detector import probe_once

    good = asyncio.run(probe_once(sim.url, verify=False))
    assert good.ok and good.trading_date is not None
    refused = asyncio.run(probe_once(f"http://127.0.0.1:{_closed_port()}"))
    assert (refused.ok, refused.kind) == (False, "refused") and "refused" in refused.detail
    assert asyncio.run(probe_once("http://:8080")).kind == "protocol"  # no host
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel completes the handshake) and never answers
    try:
        t0 = time.monotonic()
        hung = asyncio.run(probe_once(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5))
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert (hung.ok, hung.kind) == (False, "timeout")
    assert took < 5.0  # loose: the budget is 0.5 s, the machine is shared
