"""The intraday cut-off (sync.rms) against a real mainsim and a real store, with the clock
injected (no test waits for 15:20): pending MIS orders cancelled before any square-off leg,
every MIS position of the segment flat on main, CNC and other segments untouched, legs
protected, once per day (a restart one second before and one second after the cut-off
squares off exactly once), two consoles of one dealer never both send, and in BACKUP the
intents are journaled and replayed later against the live position (never overshooting).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from backend_client.client import BackendClient
from localstore import rms_store
from mainsim.faultproxy import ThreadedFaultProxy
from sync.rms import cutoff
from sync.rms.engine import RmsEngine
from sync.rms.settings import RmsSettings
from sync.runtime import Runtime
from tests.replay_env import PASSWORD, SUPER, Main, make_console

pytestmark = pytest.mark.timeout(120)

SETTINGS = RmsSettings()


def main_positions(main: Main) -> list[dict]:
    return main.http.get("/positions").json()


def mis_open(main: Main, segment: str) -> list[dict]:
    return [
        p
        for p in main_positions(main)
        if p["product"] == "MIS" and p["exchange"] == segment and p["net_quantity"]
    ]


def resting_mis_order(main: Main, exchange: str = "NSE") -> dict:
    """A MIS LIMIT buy at the lower band: it rests (pending) until cancelled."""
    pos = next(p for p in main_positions(main) if p["exchange"] == exchange)
    inst = next(
        i
        for i in main.http.get("/instruments").json()
        if (i["exchange"], i["symbol"]) == (exchange, pos["symbol"])
    )
    r = main.http.post(
        "/orders",
        json={
            "client_order_id": "TEST-RESTING-MIS-1",
            "client_id": pos["client_id"],
            "exchange": exchange,
            "symbol": pos["symbol"],
            "side": "BUY",
            "quantity": inst["lot_size"],
            "product": "MIS",
            "order_type": "LIMIT",
            "price": inst["lower_band"],
            "validity": "DAY",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "OPEN"
    return r.json()


async def _cutoff_online(url: str, con, segment: str = "NSE", **kw):
    async with BackendClient(url) as c:
        await c.login(SUPER, PASSWORD)
        return await cutoff.run(con.store, con.actor, segment, SETTINGS, mode="ONLINE", client=c, **kw)


def test_online_cutoff_cancels_pending_mis_first_then_flattens_the_segment(sim, tmp_path):
    main = Main(sim.url)
    resting = resting_mis_order(main)
    con = make_console(sim.url, tmp_path)  # its BOD holds the resting order and the book
    try:
        before = main_positions(main)
        nse_mis = mis_open(main, "NSE")
        assert nse_mis, "the seed has MIS positions on NSE (else this test proves nothing)"
        untouched = {
            (p["client_id"], p["exchange"], p["symbol"], p["product"]): p["net_quantity"]
            for p in before
            if p["net_quantity"] and not (p["product"] == "MIS" and p["exchange"] == "NSE")
        }
        assert any(k[3] == "CNC" for k in untouched) and any(k[1] == "NFO" for k in untouched)

        result = asyncio.run(_cutoff_online(sim.url, con))
        assert result.replay_status == "done" and not result.left_on_main, result.as_dict()
        assert mis_open(main, "NSE") == []
        after = {
            (p["client_id"], p["exchange"], p["symbol"], p["product"]): p["net_quantity"]
            for p in main_positions(main)
        }
        for key, net in untouched.items():  # CNC, NRML and the other segments: as they were
            assert after.get(key) == net, key
        # the pending MIS order was cancelled, and before any square-off leg reached main
        orders = main.orders()
        cancelled = next(o for o in orders if o["order_id"] == resting["order_id"])
        assert cancelled["status"] == "CANCELLED"
        legs = [o for o in orders if o["client_order_id"].startswith(f"RMS{con.trading_date:%y%m%d}S")]
        assert len(legs) >= len(nse_mis)
        assert cancelled["updated_at"] <= min(o["created_at"] for o in legs)
        # protected: LIMIT orders at most 2% through the last price, inside the band
        assert {o["order_type"] for o in legs} == {"LIMIT"}
        assert {o["status"] for o in legs} == {"COMPLETE"}
        # the plan says what it did, leg by leg, with the product
        assert {leg.product for leg in result.plan.legs} == {"MIS"}
        assert {leg.outcome for leg in result.plan.legs} == {"applied"}
        assert result.plan.cancels and result.plan.cancels[0]["outcome"] == "applied"

        # once per day: a second run (a restart) journals and sends nothing
        counts = main.coid_counts()
        again = asyncio.run(_cutoff_online(sim.url, con))
        assert again.plan.already and again.journal_seqs == []
        assert main.coid_counts() == counts
    finally:
        con.close()
        main.close()


def test_two_consoles_of_one_dealer_never_both_send(sim, tmp_path):
    main = Main(sim.url)
    a = make_console(sim.url, tmp_path, "desk-a")
    b = make_console(sim.url, tmp_path, "desk-b")  # the same user's second console: its own store
    try:
        n_mis = len(mis_open(main, "NSE"))
        assert n_mis
        first = asyncio.run(_cutoff_online(sim.url, a))
        assert mis_open(main, "NSE") == [] and first.replay_status == "done"
        counts = main.coid_counts()
        # b's mirror still holds the MIS positions (it took its BOD before): it journals the same
        # deterministic ids, looks their slices up on main and finds the book flat: nothing sent
        second = asyncio.run(_cutoff_online(sim.url, b))
        assert not second.plan.already and len(second.plan.legs) == n_mis
        assert set(counts) == set(main.coid_counts())  # no new client_order_id on main
        assert all(n == 1 for n in main.coid_counts().values())
        assert {leg.outcome for leg in second.plan.legs} <= {"applied", "moot"}
    finally:
        a.close()
        b.close()
        main.close()


def test_backup_cutoff_is_journaled_and_replayed_against_the_live_position(sim, tmp_path):
    main = Main(sim.url)
    proxy = ThreadedFaultProxy("127.0.0.1", sim.port).start()
    con = make_console(proxy.url, tmp_path)
    try:
        proxy.set_mode("refuse")  # main unreachable: BACKUP
        result = asyncio.run(cutoff.run(con.store, con.actor, "NSE", SETTINGS, mode="BACKUP", client=None))
        assert result.replay_status is None and result.journal_seqs
        assert {leg.outcome for leg in result.plan.legs} == {"journaled"}
        entries = [e for e in con.journal() if e.client_order_id.startswith("RMS")]
        assert [e.kind.value for e in entries][: len(result.plan.cancels)] == ["CANCEL"] * len(
            result.plan.cancels
        )
        # meanwhile on main, the first position was partly closed by someone else
        p = mis_open(main, "NSE")[0]
        side = "SELL" if p["net_quantity"] > 0 else "BUY"
        lot = next(
            i["lot_size"]
            for i in main.http.get("/instruments").json()
            if (i["exchange"], i["symbol"]) == (p["exchange"], p["symbol"])
        )
        main.place(p["client_id"], p["exchange"], p["symbol"], side, lot, "MIS", "TEST-PARTIAL-EXIT")
        proxy.set_mode("none")  # main back: the replay sends the journal
        replayed, _ = con.replay()
        assert replayed.status == "done"
        assert mis_open(main, "NSE") == []  # flat, not reversed: recomputed against the live position
        for q in main_positions(main):
            if (q["client_id"], q["symbol"], q["product"]) == (p["client_id"], p["symbol"], "MIS"):
                assert q["net_quantity"] == 0
    finally:
        con.close()
        proxy.stop()
        main.close()


def test_restart_one_second_before_and_after_the_cutoff_squares_off_once(sim, tmp_path):
    main = Main(sim.url)
    con = make_console(sim.url, tmp_path)
    try:
        when = cutoff.cutoff_at(SETTINGS, "NSE", con.trading_date)
        notices = []

        async def life(now_at) -> RmsEngine:
            async with BackendClient(sim.url) as c:
                await c.login(SUPER, PASSWORD)
                rt = Runtime(con.store, c, mode="ONLINE", user_id=SUPER)
                engine = RmsEngine(con.store, rt, SETTINGS, user_id=SUPER, now=lambda: now_at)
                engine.callbacks.append(notices.append)
                await engine.tick(now_at)
                return engine

        # started one second before: a warning, nothing sent
        early = asyncio.run(life(when - timedelta(seconds=1)))
        assert early.results == [] and mis_open(main, "NSE")
        assert {n.kind for n in notices} == {"cutoff_warning"}
        assert sorted(n.segment for n in notices) == ["BSE", "NFO", "NSE"]  # one warning each
        nfo = next(n for n in notices if n.segment == "NFO")
        assert nfo.detail == {"minutes": 10} and "15:25" in nfo.message  # 5 min 1 s left: the T-10 one
        # at the cut-off: the square-off
        at_cutoff = asyncio.run(life(when))
        # NSE and BSE (15:20) both cut off; NFO (15:25) has not come
        assert [r.plan.segment for r in at_cutoff.results] == ["NSE", "BSE"]
        assert not at_cutoff.results[0].plan.already and at_cutoff.results[0].plan.legs
        assert mis_open(main, "NSE") == []
        counts = main.coid_counts()
        # the console restarted one second after: it finds the day's run and does nothing
        late = asyncio.run(life(when + timedelta(seconds=1)))
        assert [r.plan.already for r in late.results] == [True, True]
        assert all(r.journal_seqs == [] for r in late.results)
        assert main.coid_counts() == counts
        runs = rms_store.runs(con.store, con.trading_date)
        assert sorted((r["rule"], r["scope"]) for r in runs) == [
            ("intraday_cutoff", "BSE"),
            ("intraday_cutoff", "NSE"),
        ]
        # NFO's cut-off (15:25) has not come: its MIS positions are untouched
        assert not any(r["scope"] == "NFO" for r in runs)
    finally:
        con.close()
        main.close()


def test_protection_price_is_inside_the_band_and_on_the_tick():
    from contract.protection import protected_price

    kw = dict(tick=Decimal("0.05"), lower_band=Decimal("90"), upper_band=Decimal("110"))
    assert protected_price("SELL", Decimal("100"), **kw) == Decimal("98.00")
    assert protected_price("BUY", Decimal("100.01"), **kw) == Decimal("102.05")  # rounded up to the tick
    assert protected_price("SELL", Decimal("91"), pct=5, **kw) == Decimal("90")  # not below the band
    assert protected_price("BUY", Decimal("100"), rule="band_edge", **kw) == Decimal("110")
    assert protected_price("SELL", Decimal("100"), rule="market", **kw) is None
    with pytest.raises(ValueError):
        protected_price("SELL", Decimal("100"), rule="magic", **kw)


def test_settings_are_checked_whole():
    from sync.rms.settings import RmsConfigError, parse

    s = parse({"intraday_cutoff": {"NSE": "15:15"}, "warn_before_minutes": [5, 10, 15]})
    assert s.intraday_cutoff["NSE"].strftime("%H:%M") == "15:15" and s.intraday_cutoff["NFO"].hour == 15
    assert s.warn_before_minutes == (15, 10, 5)
    for bad, words in [
        ({"intraday_cutoff": {"MCX": "15:00"}}, "no such segment"),
        ({"intraday_cutoff": {"NSE": "3pm"}}, "HH:MM"),
        ({"intraday_cutoff": {"NSE": "15:45"}}, "before rms.market_close"),
        ({"squareoff_protection": "yolo"}, "limit_pct"),
        ({"protection_percent": 0}, "protection_percent"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
        ({"mtm_alert_percent": [60, 150]}, "mtm_alert_percent"),
        ({"cutoff": "15:20"}, "unknown setting rms.cutoff"),
    ]:
        with pytest.raises(RmsConfigError) as err:
            parse(bad, where="config.toml")
        assert words in str(err.value) and "config.toml" in str(err.value), (bad, str(err.value))


def test_a_run_cut_short_after_journaling_is_finished_by_the_restart_exactly_once(sim, tmp_path):
    main = Main(sim.url)
    con = make_console(sim.url, tmp_path)
    try:
        assert mis_open(main, "NSE")
        # the process journaled the day's cut-off and stopped before sending anything
        cut = asyncio.run(cutoff.run(con.store, con.actor, "NSE", SETTINGS, mode="ONLINE", client=None))
        assert cut.journal_seqs and mis_open(main, "NSE")
        # restarted: the day's run is found, and what it journaled is sent now, once
        resumed = asyncio.run(_cutoff_online(sim.url, con))
        assert resumed.plan.already and resumed.replay_status == "done"
        assert mis_open(main, "NSE") == []
        assert all(n == 1 for n in main.coid_counts().values())
        again = asyncio.run(_cutoff_online(sim.url, con))  # nothing left: no pass at all
        assert again.plan.already and again.replay_status is None
    finally:
        con.close()
        main.close()
