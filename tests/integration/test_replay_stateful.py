"""A hypothesis state machine over the whole backup -> replay -> reconcile cycle.

Rules: journal in backup (place, square-off, cancel: the desk calls the CLI runs),
take main away (the fault proxy refuses or hangs), bring it back, lose the answers
to the next POSTs (the proxy throws them away after main processed them; the
client's retry then sends the same request again, which main answers a second
time), crash a replay part-way (a forked child killed by the engine's hook
LIFEBOAT_TEST_REPLAY_CRASH_AFTER) and replay.  Everything is real: one mainsim
subprocess, the fault proxy in front of it, a real store per example.

Invariants:
* after every step: no client_order_id of this console is at main more than once
  (square-off slices have their own derived ids, so this counts slices too);
* after every replay that finished and its reconciliation: every applied PLACE is
  at main exactly once as the recorded order, every applied or moot SQUARE_OFF has
  slices ``-1..-n`` each exactly once, every applied CANCEL's order is cancelled
  on main, the report says the local view equals main and finds no journal-vs-main
  mismatch, and our own comparison of the local positions with main's agrees.

Each example acts for two clients of its own whose seeded resting orders are
cancelled on main first, so nothing fills behind the machine's back.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from backend_client import errors as be
from backend_client.client import BackendClient
from localstore.models import JournalState
from sync.reconcile import reconcile
from sync.replay import CRASH_EXIT_CODE, Replayer
from sync.trading.policy import Refusal
from tests.replay_env import DropRepliesProxy, Main, make_console, replay_in_child
from tests.simproc import SimProcess

# Short timeouts while faults are on (a hung main costs a pass about a second); the
# final replay of an example uses the client's defaults.
FAULTY = {"connect_timeout": 0.5, "read_timeout": 1.0, "retries": 1}
OPEN = ("OPEN", "TRIGGER_PENDING")
UNFINISHED = (JournalState.PENDING, JournalState.SENT)


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay-stateful")
    sim = SimProcess(db=root / "main.db", workdir=root).start()
    try:
        proxy = DropRepliesProxy("127.0.0.1", sim.port).start()
        try:
            main = Main(sim.url)
            try:
                clients = sorted(
                    {p["client_id"] for p in main.http.get("/positions").json() if p["net_quantity"]}
                )
                yield {
                    "sim": sim,
                    "proxy": proxy,
                    "root": root,
                    "main": main,
                    "clients": itertools.cycle(clients),
                    "n": itertools.count(),
                }
            finally:
                main.close()
        finally:
            proxy.stop()
    finally:
        sim.kill()


class ReplayMachine(RuleBasedStateMachine):
    stage: ClassVar[dict] = {}  # the module's scene, set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        st_ = type(self).stage
        self.sim, self.proxy, self.main = st_["sim"], st_["proxy"], st_["main"]
        self.proxy.set_mode("none")
        self.proxy.drop = 0
        self.clients = [next(st_["clients"]), next(st_["clients"])]
        for c in self.clients:  # nothing of ours may fill behind the machine's back
            for o in self.main.http.get("/orders", params={"client_id": c}).json():
                if o["status"] in OPEN:
                    self.main.http.delete(f"/orders/{o['order_id']}")
        self.con = make_console(self.sim.url, st_["root"], f"example{next(st_['n'])}")
        self.con.url = self.proxy.url
        self.prefix = self.con.store.console_id + "-"
        self.token = self.main.http.headers["Authorization"].split()[1]
        self.places: list[str] = []
        self.down = False
        self.reports = 0

    # ------------------------------------------------------------------ helpers

    def _position(self, k: int):
        rows = [p for c in self.clients for p in self.con.positions(c)]
        return rows[k % len(rows)] if rows else None

    def _replay(self, timeouts: dict | None = None):
        async def go():
            async with BackendClient(self.proxy.url, token=self.token, **(timeouts or {})) as c:
                result = await Replayer(self.con.store, c).run()
                report = None
                if result.status == "done":
                    report = await reconcile(self.con.store, c, result)
                return result, report

        try:
            return asyncio.run(go())
        except be.BackendError:  # main went away between the replay and the reconciliation
            return None, None

    # ------------------------------------------------------------------ backup actions

    @rule(k=st.integers(0, 50), market=st.booleans())
    def place(self, k, market):
        p = self._position(k)
        if p is None:
            return
        inst = self.con.instrument(p.exchange, p.symbol)
        side = "SELL" if p.net_quantity > 0 else "BUY"
        price = (
            None if market else (inst.upper_band if side == "SELL" else inst.lower_band)
        )  # far away: it rests
        try:
            r = self.con.place(
                p.client_id,
                p.exchange.value,
                p.symbol,
                side,
                inst.lot_size,
                p.product.value,
                "MARKET" if market else "LIMIT",
                price,
            )
        except Refusal:
            return  # e.g. the journal already reduces all of it
        if not market:
            self.places.append(r.client_order_id)

    @rule(which=st.integers(0, 1), k=st.integers(0, 50), one_symbol=st.booleans(), keep_orders=st.booleans())
    def square_off(self, which, k, one_symbol, keep_orders):
        client = self.clients[which]
        rows = self.con.positions(client)
        symbol = rows[k % len(rows)].symbol if one_symbol and rows else None
        try:
            self.con.squareoff(client, symbol, keep_orders=keep_orders)
        except Refusal:
            pass

    @precondition(lambda self: self.places)
    @rule(k=st.integers(0, 50))
    def cancel(self, k):
        try:
            self.con.cancel(client_order_id=self.places[k % len(self.places)])
        except Refusal:
            pass  # already cancelled, or closed meanwhile

    # ------------------------------------------------------------------ the link to main

    @rule(mode=st.sampled_from(["refuse", "hang"]))
    def disconnect(self, mode):
        self.proxy.set_mode(mode)
        self.down = True

    @rule()
    def reconnect(self):
        self.proxy.set_mode("none")
        self.down = False

    @rule(n=st.integers(1, 3))
    def lose_replies(self, n):
        self.proxy.drop = n

    # ------------------------------------------------------------------ replay

    @rule(k=st.integers(1, 14))
    def crash(self, k):
        rc = replay_in_child(self.con, k, url=self.proxy.url, token=self.token, **FAULTY)
        assert rc in (0, 3, CRASH_EXIT_CODE), rc
        event(f"crash: child exit {rc}")

    @rule()
    def replay(self):
        result, report = self._replay(FAULTY)
        event(f"replay: {result.status if result else 'main lost'}{' + reconciled' if report else ''}")
        if report is not None:
            self.check_reconciled(report)
        elif result is not None and not self.down:
            assert result.status == "stopped", result.message  # a lost reply or a timeout: resumed later

    def teardown(self):
        try:
            self.proxy.set_mode("none")
            self.proxy.drop = 0
            self.down = False
            for _ in range(3):
                result, report = self._replay()
                if report is not None:
                    break
            assert report is not None, result.message if result else "main unreachable"
            self.check_reconciled(report)
            event(
                f"journal entries at the end: {min(len(self.con.journal()), 10)}{'+' if len(self.con.journal()) > 10 else ''}"
            )
            left = [(e.seq, e.state, e.state_reason) for e in self.con.journal() if e.state in UNFINISHED]
            assert not left, left
        finally:
            self.con.close()

    # ------------------------------------------------------------------ invariants

    def _ours_on_main(self) -> tuple[list[dict], dict[str, int]]:
        orders = [o for o in self.main.orders() if o["client_order_id"].startswith(self.prefix)]
        counts: dict[str, int] = {}
        for o in orders:
            counts[o["client_order_id"]] = counts.get(o["client_order_id"], 0) + 1
        return orders, counts

    @invariant()
    def no_client_order_id_twice_on_main(self):
        _, counts = self._ours_on_main()
        twice = {c: n for c, n in counts.items() if n != 1}
        assert not twice, twice

    def check_reconciled(self, report: dict) -> None:
        self.reports += 1
        orders, counts = self._ours_on_main()
        by_coid = {o["client_order_id"]: o for o in orders}
        for e in self.con.journal():
            kind, coid = e.kind.value, e.client_order_id
            if kind == "PLACE" and e.state is JournalState.APPLIED:
                assert counts.get(coid) == 1, (e.seq, coid, counts.get(coid))
                assert by_coid[coid]["order_id"] == e.main_order_id
            if kind == "SQUARE_OFF":
                slices = sorted(
                    (c for c in counts if c.startswith(coid + "-")), key=lambda c: int(c.rsplit("-", 1)[1])
                )
                assert slices == [f"{coid}-{i}" for i in range(1, len(slices) + 1)], (e.seq, slices)
                if e.state is JournalState.MOOT:
                    assert not slices, (e.seq, e.state_reason, slices)
            if kind == "CANCEL" and e.state is JournalState.APPLIED:
                target = self.main.http.get(f"/orders/{e.main_order_id}").json()
                assert target["status"] == "CANCELLED", (e.seq, target)
        assert report["mismatch_counts"]["journal_vs_main"] == 0, report["mismatches"]
        assert report["local_equals_main"], report["mismatches"]
        for c in self.clients:
            local = {
                (p.exchange.value, p.symbol, p.product.value): p.net_quantity for p in self.con.positions(c)
            }
            on_main = {
                (p["exchange"], p["symbol"], p["product"]): p["net_quantity"]
                for p in self.main.http.get("/positions", params={"client_id": c}).json()
                if p["net_quantity"]
            }
            assert local == on_main, (c, local, on_main)


def _run(stage, **kw) -> None:
    ReplayMachine.stage = stage
    run_state_machine_as_test(
        ReplayMachine,
        settings=settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), **kw),
    )


def test_replay_state_machine(stage):
    _run(stage, max_examples=4, stateful_step_count=9)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_replay_state_machine_soak(stage):
    _run(stage, max_examples=40, stateful_step_count=25)
