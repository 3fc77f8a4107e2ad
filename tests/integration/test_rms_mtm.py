"""MTM-loss limits (sync.rms.limits) against a real mainsim and a real store, the clock injected:
a client's loss is driven on main (mainsim's ``--allow-faults`` price control; the market's own
random walk held off with a long ``--tick-ms``) and the risk engine of the console's runtime
evaluates it.  Alerts at 60/75/90% exactly once each (a restart repeats none); at 100% square-off
mode: a risk-increasing order refused in both desks and through the CLI (exit 4), a reducing one
accepted; the automatic square-off when configured (flat on main, once); stale prices (main
unreachable, the local book's marks old) never raise a level nor square off: one notice says so.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

import pytest
from sqlalchemy import select

from backend_client.client import BackendClient
from contract import clock
from contract.enums import OrderType, Side
from localstore import core_tables as t
from localstore import rms_store
from localstore.db import open_store
from mainsim.faultproxy import ThreadedFaultProxy
from sync.rms import limits
from sync.rms.engine import RmsEngine, RmsNotice
from sync.rms.settings import RmsSettings
from sync.runtime import Runtime
from sync.trading import desk, online_desk
from sync.trading.desk import Actor
from sync.trading.policy import OrderTicket, Refusal
from tests.cli_env import DEAD_URL
from tests.replay_env import PASSWORD, SUPER, Main, make_console

pytestmark = pytest.mark.timeout(180)

FROZEN = ["--tick-ms", "3600000"]  # the market's random walk never steps during a test
SETTINGS = RmsSettings()
AUTO = RmsSettings(mtm_auto_squareoff=True)


# --------------------------------------------------------------------------- the scene on main


@dataclass
class Scene:
    """One client's losing position, alone on its instrument: moving that instrument's price
    moves this client's MTM and nobody else's."""

    main: Main
    client_id: str
    exchange: str
    symbol: str
    quantity: int
    limit: Decimal
    tick: Decimal
    lower: Decimal

    def positions(self) -> list[dict]:
        return self.main.http.get("/positions", params={"client_id": self.client_id}).json()

    def mtm(self) -> Decimal:
        return sum((Decimal(str(p["mtm"])) for p in self.positions()), Decimal(0))

    def used_pct(self) -> float:
        return float(-self.mtm() / self.limit * 100)

    def price_for(self, pct: float) -> Decimal:
        """The price of the instrument at which the client's MTM loss is ``pct`` of its limit
        (rounded down to the tick: a hair more loss, never less)."""
        rows = self.positions()
        mine = next(p for p in rows if (p["exchange"], p["symbol"]) == (self.exchange, self.symbol))
        other = sum((Decimal(str(p["mtm"])) for p in rows if p is not mine), Decimal(0))
        avg, q = Decimal(str(mine["average_price"])), mine["net_quantity"]
        target = -Decimal(str(pct)) / 100 * self.limit
        price = avg + (target - other) / q
        price = (price / self.tick).to_integral_value(ROUND_FLOOR) * self.tick
        assert price >= self.lower, f"{pct}% is beyond the band of {self.symbol}"
        return price

    def drive(self, pct: float) -> float:
        """Move the price so the client's loss is ``pct`` of its limit; returns the percent main shows."""
        r = self.main.http.post(
            "/admin/prices",
            json={"exchange": self.exchange, "symbol": self.symbol, "last_price": float(self.price_for(pct))},
        )
        assert r.status_code == 200, r.text
        used = self.used_pct()
        assert pct <= used < pct + 0.5, (pct, used)
        return used

    def net(self) -> int:
        return self.main.net(self.client_id, self.exchange, self.symbol, "MIS")


def make_scene(main: Main, clients: set[str] | None = None, coid: str = "TEST-MTM-OPEN") -> Scene:
    """A client (of ``clients``, else any) buys, on main, enough of an instrument nobody holds or
    has an order in that a fall to the band's low would cost it 115% of its MTM-loss limit."""
    positions = main.http.get("/positions").json()
    busy = {(p["exchange"], p["symbol"]) for p in positions}
    busy |= {(o["exchange"], o["symbol"]) for o in main.orders()}
    free = sorted(
        (
            i
            for i in main.http.get("/instruments").json()
            if i["exchange"] in ("NSE", "BSE")
            and i["lot_size"] == 1
            and (i["exchange"], i["symbol"]) not in busy
        ),
        key=lambda i: (i["lower_band"] / i["last_price"], i["symbol"]),  # widest band first
    )
    lims = {x["client_id"]: x for x in main.http.get("/limits").json()}
    mtm: dict[str, Decimal] = {}
    gross: dict[str, Decimal] = {}
    for p in positions:
        mtm[p["client_id"]] = mtm.get(p["client_id"], Decimal(0)) + Decimal(str(p["mtm"]))
        gross[p["client_id"]] = gross.get(p["client_id"], Decimal(0)) + abs(p["net_quantity"]) * Decimal(
            str(p["last_price"])
        )
    for cid in sorted(clients or lims):
        lim = lims[cid]
        if not lim.get("max_mtm_loss"):
            continue
        loss_limit = Decimal(str(lim["max_mtm_loss"]))
        # the client starts well below the first alert (else the alerts would not be this test's)
        if -mtm.get(cid, Decimal(0)) > loss_limit * Decimal("0.3"):
            continue
        for inst in free:
            last, lower = Decimal(str(inst["last_price"])), Decimal(str(inst["lower_band"]))
            need = loss_limit * Decimal("1.15") + max(Decimal(0), mtm.get(cid, Decimal(0)))
            q = math.ceil(need / (last - lower))
            value = q * last
            if value <= Decimal(str(lim["max_order_value"])) * Decimal("0.95") and gross.get(
                cid, Decimal(0)
            ) + value <= Decimal(str(lim["max_gross_exposure"])) * Decimal("0.95"):
                order = main.place(cid, inst["exchange"], inst["symbol"], "BUY", q, "MIS", coid)
                assert order["status"] == "COMPLETE", order
                return Scene(
                    main,
                    cid,
                    inst["exchange"],
                    inst["symbol"],
                    q,
                    loss_limit,
                    Decimal(str(inst["tick_size"])),
                    lower,
                )
    raise AssertionError("no client and instrument make this scene (the seed changed?)")


# --------------------------------------------------------------------------- the engine


class Engine:
    """The risk engine of a console's runtime (as console/live.py attaches it), one process life:
    ``tick(now)`` is the runtime's clock; the notices it told are kept."""

    def __init__(
        self,
        url: str,
        store,
        settings: RmsSettings,
        *,
        user: str = SUPER,
        mode: str = "ONLINE",
        login: bool = True,
    ):
        self.url, self.store, self.settings, self.user, self.mode = url, store, settings, user, mode
        self.login = login
        self.notices: list[RmsNotice] = []
        self.engine: RmsEngine | None = None

    async def __aenter__(self) -> Engine:
        self.client = BackendClient(self.url)
        await self.client.__aenter__()
        if self.login:
            await self.client.login(self.user, PASSWORD)
        rt = Runtime(self.store, self.client, mode=self.mode, user_id=self.user)
        self.engine = RmsEngine(self.store, rt, self.settings, user_id=self.user)
        self.engine.callbacks.append(self.notices.append)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.__aexit__(*exc)

    async def tick(self, now: datetime) -> list[RmsNotice]:
        assert self.engine is not None
        before = len(self.notices)
        await self.engine.tick(now)
        return [n for n in self.notices[before:] if n.kind != "cutoff_warning"]


def kinds(notices: list[RmsNotice]) -> list[tuple[str, int | None]]:
    return [(n.kind, (n.detail or {}).get("level")) for n in notices]


def audit_rows(store, *actions: str) -> list[dict]:
    a = t.audit_log
    with store.read_core() as conn:
        rows = conn.execute(select(a.c.action, a.c.payload).where(a.c.action.in_(actions)).order_by(a.c.id))
        return [{"action": r.action, **json.loads(r.payload)} for r in rows]


def rms_orders(main: Main, day) -> list[dict]:
    return main.orders_with_prefix(f"RMS{day:%y%m%d}")


def ticket(scene: Scene, side: str, quantity: int) -> OrderTicket:
    return OrderTicket(
        scene.client_id, scene.exchange, scene.symbol, Side(side), quantity, "MIS", OrderType.MARKET
    )


# --------------------------------------------------------------------------- tests


def test_alerts_once_each_then_the_breach_makes_the_client_reduce_only(sim_factory, tmp_path):
    sim = sim_factory(allow_faults=True, extra_args=FROZEN)
    main = Main(sim.url)
    scene = make_scene(main)
    con = make_console(sim.url, tmp_path)
    now = clock.utcnow()
    step = timedelta(seconds=limits.EVERY_S)
    try:
        before = main.coid_counts()

        async def day() -> list[list[tuple]]:
            seen: list[list[tuple]] = []
            async with Engine(sim.url, con.store, SETTINGS) as e:
                nonlocal now
                for pct in (65, 65, 80, 93, 70, 96):
                    await asyncio.to_thread(scene.drive, pct)
                    seen.append(kinds(await e.tick(now)))
                    now += step
                # not every tick: within the interval nothing is evaluated (one request to main each time)
                await asyncio.to_thread(scene.drive, 99)
                assert await e.tick(now - step + timedelta(seconds=1)) == []
            async with Engine(sim.url, con.store, SETTINGS) as e:  # the console restarted
                seen.append(kinds(await e.tick(now)))
                now += step
                await asyncio.to_thread(scene.drive, 103)
                breach = await e.tick(now)
                seen.append(kinds(breach))
                assert breach[0].severity == "error" and scene.client_id in breach[0].message
                now += step
                seen.append(kinds(await e.tick(now)))  # breached already: nothing more
                risk = next(r for r in e.engine.mtm.risks if r.client_id == scene.client_id)
                assert risk.source == "main" and not risk.stale and risk.squareoff_mode
            return seen

        seen = asyncio.run(day())
        # 65 -> the 60% alert; 65 again: nothing; 80 -> 75; 93 -> 90; back to 70, up to 96: nothing
        assert seen == [
            [("mtm_alert", 60)],
            [],
            [("mtm_alert", 75)],
            [("mtm_alert", 90)],
            [],
            [],
            [],  # the restart at 99%: the day's level is in the store, no alert again
            [("mtm_breach", 100)],
            [],
        ]
        state = rms_store.client_states(con.store, con.trading_date)[scene.client_id]
        assert state.alert_level == 100 and state.squareoff_mode
        assert -state.mtm >= state.max_mtm_loss == scene.limit
        # audited with the numbers acted on
        rows = audit_rows(con.store, "rms_mtm_alert", "rms_mtm_breach")
        assert [(r["action"], r["level"]) for r in rows] == [
            ("rms_mtm_alert", 60),
            ("rms_mtm_alert", 75),
            ("rms_mtm_alert", 90),
            ("rms_mtm_breach", 100),
        ]
        assert {r["client_id"] for r in rows} == {scene.client_id} and {r["rule"] for r in rows} == {
            "mtm_loss"
        }
        assert [math.floor(r["used_pct"]) for r in rows] == [65, 80, 93, 103]
        assert all(Decimal(r["max_mtm_loss"]) == scene.limit and Decimal(r["mtm"]) < 0 for r in rows)
        # no automatic square-off unless configured: nothing sent, the position as it was
        assert main.coid_counts() == before and scene.net() == scene.quantity

        # square-off mode: reduce-only for that client, in both desks
        actor = Actor(SUPER, "supervisor", frozenset(), con.trading_date)
        with pytest.raises(Refusal) as refused:
            desk.place(con.store, actor, ticket(scene, "BUY", 1), mode="BACKUP")
        assert refused.value.code == "mtm_squareoff_mode"
        assert scene.client_id in refused.value.message and f"{scene.limit:,.2f}" in refused.value.message
        with pytest.raises(Refusal) as refused:  # more than the position: it would reverse it
            desk.place(con.store, actor, ticket(scene, "SELL", scene.quantity + 1), mode="BACKUP")
        assert refused.value.code == "mtm_squareoff_mode"
        assert desk.place(con.store, actor, ticket(scene, "SELL", 1), mode="BACKUP").client_order_id

        async def online(side: str, quantity: int, client_id: str | None = None):
            async with BackendClient(sim.url) as c:
                await c.login(SUPER, PASSWORD)
                tk = ticket(scene, side, quantity)
                if client_id is not None:
                    tk = OrderTicket(
                        client_id, tk.exchange, tk.symbol, tk.side, tk.quantity, tk.product, tk.order_type
                    )
                return await online_desk.place(
                    con.store, c, actor, tk, validity="DAY", disclosed_quantity=None
                )

        with pytest.raises(Refusal) as refused:
            asyncio.run(online("BUY", 1))
        assert refused.value.code == "mtm_squareoff_mode"
        assert asyncio.run(online("SELL", 2)).status.value == "COMPLETE"  # reducing: accepted by main
        assert scene.net() == scene.quantity - 2
        other = next(cid for cid in rms_store.mtm_limits(con.store) if cid != scene.client_id)
        assert asyncio.run(online("BUY", 1, other)).status.value == "COMPLETE"  # another client: as before
    finally:
        con.close()
        main.close()


def test_breach_squares_the_client_off_automatically_once(sim_factory, tmp_path):
    sim = sim_factory(allow_faults=True, extra_args=FROZEN)
    main = Main(sim.url)
    scene = make_scene(main)
    # a pending order of the client's, far from the market: cancelled before the square-off
    inst = next(
        i
        for i in main.http.get("/instruments").json()
        if i["exchange"] == "NSE" and i["symbol"] != scene.symbol and i["lot_size"] == 1
    )
    r = main.http.post(
        "/orders",
        json={
            "client_order_id": "TEST-MTM-RESTING",
            "client_id": scene.client_id,
            "exchange": "NSE",
            "symbol": inst["symbol"],
            "side": "BUY",
            "quantity": 1,
            "product": "MIS",
            "order_type": "LIMIT",
            "price": inst["lower_band"],
            "validity": "DAY",
        },
    )
    assert r.status_code == 201 and r.json()["status"] == "OPEN", r.text
    resting = r.json()
    con = make_console(sim.url, tmp_path)
    now = clock.utcnow()
    try:
        assert sum(1 for p in scene.positions() if p["net_quantity"]) >= 2  # the seed's and the scene's
        scene.drive(104)

        async def life(at: datetime) -> tuple[list, list]:
            async with Engine(sim.url, con.store, AUTO) as e:
                told = await e.tick(at)
                return told, e.engine.mtm.squareoffs

        told, runs = asyncio.run(life(now))
        assert [n.kind for n in told] == ["mtm_breach", "mtm_squareoff"], [n.message for n in told]
        assert "squaring it off" in told[0].message
        assert [p for p in scene.positions() if p["net_quantity"]] == []  # flat on main, every product
        (run,) = runs
        assert run.replay_status == "done" and not run.left_on_main
        assert {leg.outcome for leg in run.legs} == {"applied"}
        sent = rms_orders(main, con.trading_date)
        assert sent and {o["client_id"] for o in sent} == {scene.client_id}
        assert {o["order_type"] for o in sent} == {"LIMIT"} and {o["status"] for o in sent} == {"COMPLETE"}
        cancelled = next(o for o in main.orders() if o["order_id"] == resting["order_id"])
        assert cancelled["status"] == "CANCELLED"
        assert cancelled["updated_at"] <= min(o["created_at"] for o in sent)  # cancelled before any leg
        days_runs = [(x["rule"], x["scope"]) for x in rms_store.runs(con.store, con.trading_date)]
        assert days_runs == [("mtm_loss", scene.client_id)]
        (audited,) = audit_rows(con.store, "rms_mtm_squareoff")
        assert audited["client_id"] == scene.client_id and audited["rule"] == "mtm_loss"
        assert audited["used_pct"] >= 100 and audited["count"] == len(run.legs) + len(run.cancels)

        # once per client and day: a later evaluation, and a restarted console, send nothing
        counts = main.coid_counts()
        told, runs = asyncio.run(life(now + timedelta(seconds=limits.EVERY_S)))
        assert told == [] and [x.already for x in runs] == [True]
        assert main.coid_counts() == counts
    finally:
        con.close()
        main.close()


def test_stale_prices_never_act(sim_factory, tmp_path):
    sim = sim_factory(allow_faults=True, extra_args=FROZEN)
    main = Main(sim.url)
    scene = make_scene(main)
    # the price control: a supervisor's, inside the band
    dealer = Main(sim.url, "dealer1")
    try:
        body = {"exchange": scene.exchange, "symbol": scene.symbol, "last_price": float(scene.lower)}
        assert dealer.http.post("/admin/prices", json=body).status_code == 403
    finally:
        dealer.close()
    below = {**body, "last_price": float(scene.lower - scene.tick)}
    assert main.http.post("/admin/prices", json=below).json()["error"]["code"] == "price_out_of_band"
    scene.drive(104)  # before the BOD: the local book holds the breach
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port).start()
    con = make_console(proxy.url, tmp_path)
    try:
        _, bod_at = rms_store.position_marks(con.store)
        assert bod_at is not None
        later = bod_at + timedelta(minutes=10)  # the book's marks are 10 min old: stale (bound 30 s)
        proxy.set_mode("refuse")  # main unreachable: its positions cannot be had, the stream is down
        journal_before = len(con.journal())

        async def stale(mode: str) -> list[list[RmsNotice]]:
            out = []
            async with Engine(proxy.url, con.store, AUTO, mode=mode, login=False) as e:
                for k in range(3):
                    out.append(await e.tick(later + k * timedelta(seconds=limits.EVERY_S)))
                risk = next(r for r in e.engine.mtm.risks if r.client_id == scene.client_id)
                assert risk.source == "local" and risk.stale and risk.used_pct >= 100
                assert risk.price_age_s >= 600
            return out

        for mode in ("ONLINE", "BACKUP"):  # ONLINE: main's positions fail; BACKUP: the local book
            first, *rest = asyncio.run(stale(mode))
            assert [n.kind for n in first] == ["stale_prices"] and rest == [[], []]  # one per episode
            assert scene.client_id in first[0].message and "held" in first[0].message
            assert scene.client_id in [h["client_id"] for h in first[0].detail["held"]]
        # no alert level, no square-off mode, nothing journaled, nothing sent
        assert rms_store.client_states(con.store, con.trading_date) == {}
        assert rms_store.runs(con.store, con.trading_date) == []
        assert len(con.journal()) == journal_before
        assert scene.net() == scene.quantity

        # the same book with a bound that makes those marks fresh does act (so staleness was the gate)
        lenient = RmsSettings(mtm_auto_squareoff=True, stale_price_seconds=3600)

        async def fresh() -> list[RmsNotice]:
            async with Engine(proxy.url, con.store, lenient, mode="BACKUP", login=False) as e:
                return await e.tick(later)

        told = asyncio.run(fresh())
        assert [n.kind for n in told] == ["mtm_breach", "mtm_squareoff"], [n.message for n in told]
        assert "journaled" in told[1].message  # BACKUP: waits for the replay
        new = con.journal()[journal_before:]
        assert new and all(e.client_order_id.startswith("RMS") for e in new)
        assert {e.client_id for e in new} == {scene.client_id}
    finally:
        con.close()
        proxy.stop()
        main.close()


def test_cli_refuses_a_risk_increasing_order_in_squareoff_mode(sim_factory, cli_factory):
    sim = sim_factory(allow_faults=True, extra_args=FROZEN)
    cli = cli_factory(sim.url)  # dealer1
    main = Main(sim.url)
    try:
        cli.login().ok()
        mine = {p["client_id"] for p in cli("positions", "--json").ok().json()}
        scene = make_scene(main, mine)
        cli("sync", "bod").ok()
        status = cli("rms", "status", "--json").ok().json()
        assert status["mtm_source"] == "main" and status["mtm_source_reason"] is None
        row = next(c for c in status["clients"] if c["client_id"] == scene.client_id)
        assert row["source"] == "main" and row["stale"] is False and row["mode"] == "normal"
        assert row["open_positions"] >= 1 and row["price_age_s"] is not None and row["price_age_s"] < 30
        scene.drive(101)
        store = open_store(cli.store_file)
        try:

            async def breach() -> list[RmsNotice]:
                async with Engine(sim.url, store, SETTINGS, user="dealer1") as e:
                    return await e.tick(clock.utcnow())

            assert [n.kind for n in asyncio.run(breach())] == ["mtm_breach"]
        finally:
            store.close()
        status = cli("rms", "status", "--json").ok().json()
        row = next(c for c in status["clients"] if c["client_id"] == scene.client_id)
        assert row["mode"] == "squareoff" and row["alert_level"] == 100 and row["used_pct"] >= 100
        order = (
            "--password-stdin",
            "order",
            "place",
            "--client",
            scene.client_id,
            "--exchange",
            scene.exchange,
            "--symbol",
            scene.symbol,
            "--quantity",
            "1",
            "--product",
            "MIS",
            "--type",
            "MARKET",
            "--yes",
            "--json",
        )
        refused = cli(*order, "--side", "BUY", stdin=PASSWORD + "\n")
        assert refused.returncode == 4, refused.stderr
        err = refused.json()["error"]
        assert err["reason"] == "mtm_squareoff_mode" and scene.client_id in err["message"]
        ok = cli(*order, "--side", "SELL", stdin=PASSWORD + "\n")
        assert ok.returncode == 0, ok.stderr
        assert scene.net() == scene.quantity - 1
        # main down: the status comes from the local book, and says so
        down = cli("--backend", DEAD_URL, "rms", "status", "--json").ok().json()
        assert down["mtm_source"] == "local" and "BACKUP" in down["mtm_source_reason"]
        row = next(c for c in down["clients"] if c["client_id"] == scene.client_id)
        assert row["source"] == "local" and row["mode"] == "squareoff" and row["price_age_s"] is not None
    finally:
        main.close()
