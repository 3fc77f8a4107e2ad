"""The live mirror (sync.runtime.Runtime) against a real mainsim: after a random burst
of orders the local book equals main's; a stream dropped mid-burst (mainsim killed
with -9 and restarted) loses nothing; a gap the stream cannot fill ends in a fresh
snapshot.

The Runtime runs on its own event loop in a thread, as `lifeboat agent` runs it;
the test thread plays the dealer with plain HTTP calls to main and compares main's
view of the scope with the store file."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from backend_client.client import BackendClient
from localstore.db import Store, open_store
from localstore.models import AuditRow, PositionRow
from sync.runtime import Runtime
from tests.sync_env import (
    PASSWORD,
    Dealer,
    newest_scope_seq,
    simple_burst,
    sync_state,
    wait_until_mirrored,
)

# --------------------------------------------------------------------------- the runtime in a thread


class RuntimeThread:
    """A Runtime mirroring ``user``'s scope into ``store``, on its own loop in a thread."""

    def __init__(self, store: Store, url: str, user: str = "dealer1"):
        self.store = store
        self.url = url
        self.user = user
        self.runtime: Runtime | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="runtime", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - the thread's failure, reported by stop() / wait_connected()
            self.error = exc

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        async with BackendClient(self.url) as client:
            await client.login(self.user, PASSWORD)
            self.runtime = Runtime(self.store, client)
            await self.runtime.run()

    def start(self, timeout: float = 30) -> RuntimeThread:
        self._thread.start()
        self.wait_connected(timeout)
        return self

    def wait_connected(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.error is None, f"runtime failed: {self.error!r}"
            if self.runtime is not None and self.runtime.status.connected:
                return
            time.sleep(0.05)
        raise AssertionError(f"runtime never connected: {self.runtime and self.runtime.status}")

    def stop(self) -> None:
        if self._loop is not None and self.runtime is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.runtime.stop)
        self._thread.join(15)
        assert not self._thread.is_alive(), "runtime did not stop"
        assert self.error is None, f"runtime failed: {self.error!r}"


# --------------------------------------------------------------------------- bursts


def actions(n_clients: int, n_instruments: int):
    place = st.tuples(
        st.just("place"),
        st.integers(0, n_clients - 1),
        st.integers(0, n_instruments - 1),
        st.sampled_from(("BUY", "SELL")),
        st.booleans(),
        st.integers(1, 3),
        st.integers(-4, 4),
    )
    cancel = st.tuples(st.just("cancel"), st.integers(0, 40))
    modify = st.tuples(st.just("modify"), st.integers(0, 40), st.integers(-4, 4))
    return st.lists(st.one_of(place, place, place, cancel, modify), min_size=8, max_size=25)


def run_burst(dealer: Dealer, burst) -> None:
    for action in burst:
        if action[0] == "place":
            _, c, i, side, limit, lots, offset = action
            dealer.place(dealer.scope[c], dealer.instruments[i], side, limit, lots, offset)
        elif action[0] == "cancel":
            dealer.cancel(action[1])
        else:
            dealer.modify(action[1], action[2])


# --------------------------------------------------------------------------- tests


def test_mirror_equals_main_after_random_bursts(sim, tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    runner = RuntimeThread(store, sim.url).start()
    dealer = Dealer(sim.url)
    try:
        wait_until_mirrored(dealer, store)

        @settings(
            max_examples=6,
            deadline=None,
            database=None,
            derandomize=False,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(burst=actions(len(dealer.scope), len(dealer.instruments)))
        def burst_is_mirrored(burst):
            run_burst(dealer, burst)
            wait_until_mirrored(dealer, store)

        burst_is_mirrored()
        assert len(dealer.placed) >= 10, (dealer.placed, dealer.rejected)  # the bursts really traded
        assert runner.runtime.status.resnapshots == 1  # the start-of-agent snapshot only
        assert runner.runtime.mirror.applied > 0
    finally:
        dealer.close()
        runner.stop()
        store.close()


def test_stream_dropped_mid_burst_loses_nothing(sim, tmp_path):
    store = open_store(tmp_path / "lifeboat.db")
    runner = RuntimeThread(store, sim.url).start()
    dealer = Dealer(sim.url)
    try:
        simple_burst(dealer, 15)  # every one acknowledged by main (durable there)
        sim.kill()  # kill -9, mid-burst: the mirror has not necessarily seen these events yet
        placed_before = list(dealer.placed)
        dealer.close()
        sim.start()  # same port, same database
        dealer = Dealer(sim.url)
        dealer.placed = placed_before
        simple_burst(dealer, 15, start=15)

        wait_until_mirrored(dealer, store, timeout=30)
        runtime = runner.runtime
        assert runtime.stream.reconnects >= 1
        assert runtime.status.resnapshots == 1  # resumed by sequence, no fresh snapshot needed
        # A tick may fill a resting test order at any moment (new events): poll, do not sample once.
        deadline = time.monotonic() + 15
        while True:
            newest = newest_scope_seq(sim.url, dealer.token)
            assert newest is not None
            if sync_state(store).last_event_seq == newest == runtime.mirror.state.last_event_seq:
                break
            assert time.monotonic() < deadline, (newest, sync_state(store).last_event_seq)
            time.sleep(0.2)
        wait_until_mirrored(dealer, store)
    finally:
        dealer.close()
        runner.stop()
        store.close()


def test_events_placed_while_the_stream_is_down_arrive_on_resume(sim_factory, tmp_path):
    """mainsim's fault proxy refuses the public address while the dealer keeps trading on
    the direct one: every event of that window reaches the mirror only through ?since=."""
    sim = sim_factory(allow_faults=True)
    store = open_store(tmp_path / "lifeboat.db")
    runner = RuntimeThread(store, sim.url).start()
    supervisor = raw_token(sim.control_url, "super1")
    dealer = Dealer(sim.control_url)
    try:
        simple_burst(dealer, 3)
        wait_until_mirrored(dealer, store)
        set_fault(sim.control_url, supervisor, "refuse")
        deadline = time.monotonic() + 15
        while runner.runtime.status.connected:
            assert time.monotonic() < deadline, "the stream never noticed the outage"
            time.sleep(0.05)
        missed_from = sync_state(store).last_event_seq
        simple_burst(dealer, 12, start=3)  # the mirror cannot see these live
        assert sync_state(store).last_event_seq == missed_from
        set_fault(sim.control_url, supervisor, "none")

        wait_until_mirrored(dealer, store, timeout=30)
        assert runner.runtime.stream.reconnects >= 1
        assert runner.runtime.status.resnapshots == 1  # resumed by sequence
    finally:
        dealer.close()
        runner.stop()
        store.close()


def raw_token(url: str, user: str) -> str:
    r = httpx.post(f"{url}/api/v1/session", json={"user_id": user, "password": PASSWORD}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


def set_fault(control_url: str, token: str, mode: str) -> None:
    r = httpx.post(
        f"{control_url}/api/v1/admin/faults",
        json={"mode": mode},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_a_gap_the_stream_cannot_fill_takes_a_fresh_snapshot(sim_factory, tmp_path):
    sim = sim_factory(extra_args=["--event-retention", "5"])
    store = open_store(tmp_path / "lifeboat.db")
    dealer = Dealer(sim.url)
    first = RuntimeThread(store, sim.url).start()
    try:
        simple_burst(dealer, 3)
        wait_until_mirrored(dealer, store)
    finally:
        first.stop()
    resume_from = sync_state(store).last_event_seq

    simple_burst(dealer, 12, start=3)  # main moves on; it keeps only the newest 5 events
    second = RuntimeThread(store, sim.url).start()
    try:
        # A snapshot carries open orders (and every trade) only: the market orders that
        # completed while no runtime ran are on main alone, by design.
        dealer.placed = []
        wait_until_mirrored(dealer, store)
        assert second.runtime.status.resnapshots == 1
        assert sync_state(store).last_event_seq > resume_from
        with store.read() as s:
            reasons = [
                json.loads(p)["reason"]
                for p in s.scalars(
                    select(AuditRow.payload).where(AuditRow.action == "bod_sync").order_by(AuditRow.id)
                )
            ]
        assert reasons[0] == "start of agent" and len(reasons) == 2
        assert reasons[1].startswith("stream asked") and "retained" in reasons[1]
    finally:
        dealer.close()
        second.stop()
        store.close()


def test_another_users_agent_on_the_same_console_mirrors_its_own_scope(sim, tmp_path):
    """A shared desk console: dealer1's runtime took today's BOD; dealer2 then runs the
    agent on the same store.  Resuming dealer1's book with dealer2's stream would mix two
    scopes (and show dealer1's clients to dealer2 in backup mode): it must re-snapshot."""
    store = open_store(tmp_path / "lifeboat.db")
    first = RuntimeThread(store, sim.url, user="dealer1").start()
    first.stop()
    other = Dealer(sim.url, user="dealer2")
    second = RuntimeThread(store, sim.url, user="dealer2").start()
    try:
        simple_burst(other, 4)
        wait_until_mirrored(other, store)
        with store.read() as s:
            local_clients = {p.client_id for p in s.scalars(select(PositionRow))}
        assert local_clients and local_clients <= set(other.scope)
    finally:
        other.close()
        second.stop()
        store.close()
