"""The risk rules on the dealer console (issue 13), against a real mainsim and a real store, with
the app's clock injected (never the real date or time):

- the RMS panel counts down to each segment's intraday cut-off by the app's clock, says what
  the cut-off will do (the risk status's dry run of the local book) and lists the clients
  nearest their MTM-loss limit; F7 expands it;
- the runtime's risk engine's notices reach the dealer as toasts with their severity (the
  T-10 warning; the cut-off itself, run for real against mainsim, and the panel then says done);
- a client in square-off mode is marked on its position rows and on the panel;
- once the stream is down (mainsim killed: BACKUP), every LTP on the market watch, the net
  positions and the order form carries its age, and an order priced from it asks first, naming
  the age; a MARKET order in BACKUP is journaled as a LIMIT at the protection price.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest

from contract import clock as wallclock
from tests.cli_env import PASSWORD
from tests.tui_env import SIZE, login, make_app, run, wait_for

pytestmark = pytest.mark.timeout(150)


class Clock:
    """The app's wall clock, frozen until a test moves it."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _today_at(hh: int, mm: int, ss: int = 0) -> datetime:
    """hh:mm:ss exchange time (IST) on the test world's trading day (tests/testclock.py)."""
    day = wallclock.utcnow().astimezone(wallclock.IST).date()
    return datetime.combine(day, time(hh, mm, ss), wallclock.IST)


def _panel_text(desk) -> str:
    from console.tui.widgets.rms import RmsPanel

    return desk.query_one(RmsPanel).render_text().plain


def _toasts(app) -> list:
    return list(app._notifications)


# --------------------------------------------------------------------------- countdown, notices, the cut-off


def test_panel_counts_down_to_the_cutoff_shows_the_warning_then_the_cutoff_done(sim, tmp_path, tui_keyring):
    run(_countdown_and_notices(sim, tmp_path))


async def _countdown_and_notices(sim, tmp_path):
    from console.tui.screens.lock import LockScreen
    from console.tui.widgets.rms import will_text

    clock = Clock(_today_at(15, 12, 30))
    app = make_app(sim.url, tmp_path / "home", clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        await wait_for(pilot, lambda: app.live.snapshot().running, what="the runtime")
        # the countdown by the app's clock: 7 m 30 s to NSE's and BSE's 15:20, 12 m 30 s to NFO's 15:25
        await wait_for(pilot, lambda: "NSE 15:20 in 7 m 30 s" in _panel_text(desk), what="the countdown")
        line = _panel_text(desk)
        assert "BSE 15:20 in 7 m 30 s" in line and "NFO 15:25 in 12 m 30 s" in line, line
        assert line.index("NSE") < line.index("NFO")  # soonest first
        clock.advance(30)
        await wait_for(pilot, lambda: "NSE 15:20 in 7 m 00 s" in _panel_text(desk), what="the next second")

        # F7: what each cut-off will do (the risk status's dry run) and the clients nearest their limit
        await wait_for(pilot, lambda: desk.rms and desk.rms["clients"], what="the risk status of the book")
        expected = await app.live.call(app.service.rms_status, now=clock())
        await pilot.press("f7")
        await pilot.pause()
        text = _panel_text(desk)
        nse = next(c for c in expected["cutoffs"] if c["segment"] == "NSE")
        assert nse["will"]["squareoff_mis_positions"] > 0, nse  # the demo book holds MIS positions
        assert "NSE  15:20  in 7 m 00 s" in text and will_text(nse["will"]) in text, text
        limited = [c for c in expected["clients"] if c["used_pct"] is not None]
        assert limited and "clients nearest their MTM-loss limit" in text
        nearest = max(limited, key=lambda c: c["used_pct"])
        assert f"\n  {nearest['client_id']}" in text, text
        await pilot.press("f7")
        await pilot.pause()
        assert "\n" not in _panel_text(desk)  # one line again

        # the engine's T-10 warning (its tick driven at 15:10:01 on the live session's loop): a toast,
        # over the lock screen too (it names no client: a segment and a time)
        app.action_lock()
        lock = await wait_for(pilot, lambda: isinstance(app.screen, LockScreen) and app.screen, what="lock")
        rt = app.live._runtime
        assert rt is not None and rt.rms is not None
        cutoff = _today_at(15, 20)
        await app.live.call(rt.rms.tick, cutoff - timedelta(minutes=10) + timedelta(seconds=1))
        await wait_for(pilot, lambda: len(app.risk_notices) >= 2, what="the warnings (NSE and BSE)")
        toast = next((n for n in _toasts(app) if n.title == "Intraday cut-off NSE"), None)
        assert toast is not None, f"not shown over the lock; held: {app._held_notices}"
        assert toast.severity == "warning" and "intraday cut-off NSE at 15:20" in toast.message, toast
        assert not app._held_notices and app.screen is lock
        assert {(n.kind, n.segment) for n in app.risk_notices} == {
            ("cutoff_warning", "NSE"),
            ("cutoff_warning", "BSE"),
        }
        lock.query_one("#lock-password").value = PASSWORD
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is desk, what="unlocked")
        assert "intraday cut-off NSE at 15:20" not in _panel_text(desk)  # one line: the countdown
        await pilot.press("f7")
        await pilot.pause()
        assert "intraday cut-off NSE at 15:20" in _panel_text(desk)  # the panel keeps the last notices
        await pilot.press("f7")

        # the cut-off itself (ONLINE: cancels and square-offs sent to main at once), then "done" on the panel
        clock.now = cutoff + timedelta(seconds=1)
        await app.live.call(rt.rms.tick, cutoff + timedelta(seconds=1))
        done = await wait_for(
            pilot,
            lambda: next(
                (n for n in app.risk_notices if n.kind == "cutoff_done" and n.segment == "NSE"), None
            ),
            timeout=30,
            what="the NSE cut-off",
        )
        assert "MIS position(s) squared off" in done.message, done.message
        assert any(n.title == "Intraday cut-off NSE" and n.message == done.message for n in _toasts(app))
        await wait_for(pilot, lambda: "NSE 15:20 done" in _panel_text(desk), what="the panel to say done")
        # NFO has not run: still counting down
        await wait_for(
            pilot, lambda: "NFO 15:25 in 4 m 59 s" in _panel_text(desk), what="NFO still counting down"
        )


# --------------------------------------------------------------------------- square-off mode on the rows


def test_a_client_in_squareoff_mode_is_marked_on_its_rows_and_the_panel(sim, tmp_path, tui_keyring):
    run(_squareoff_mode(sim, tmp_path))


async def _squareoff_mode(sim, tmp_path):
    from localstore import rms_store

    clock = Clock(_today_at(11, 0))
    app = make_app(sim.url, tmp_path / "home", clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        pos = desk.grid("positions")
        await wait_for(pilot, lambda: pos.row_count > 0 and desk.rms is not None, what="positions and risk")
        client = pos.row(pos.keys()[0])["client_id"]
        assert all(not (pos.row(k).get("squareoff") or "") for k in pos.keys())  # noqa: SIM118
        with app.service.store.write_core() as conn:  # what the MTM rule records at a breach
            rms_store.put_client_state(
                conn,
                trading_date=clock().date(),
                client_id=client,
                alert_level=100,
                squareoff_mode=True,
                mtm=Decimal("-9000"),
                max_mtm_loss=Decimal("6000"),
                at=clock(),
            )
        mine = [k for k in pos.keys() if k[0] == client]  # noqa: SIM118
        await wait_for(
            pilot,
            lambda: all(pos.row(k)["squareoff"] == "SQ-OFF MODE" for k in mine),
            what="the rows marked",
        )
        assert all(not pos.row(k)["squareoff"] for k in pos.keys() if k[0] != client)  # noqa: SIM118
        assert any("SQ-OFF MODE" in line for line in pos.visible_text())
        assert f"SQUARE-OFF MODE: {client}" in _panel_text(desk)
        await pilot.press("f7")
        await pilot.pause()
        row = next(line for line in _panel_text(desk).splitlines() if line.strip().startswith(client))
        assert "SQUARE-OFF MODE: reduce-only" in row, row


# --------------------------------------------------------------------------- stale prices


def test_stale_prices_carry_their_age_and_an_order_from_one_asks_first(sim, tmp_path, tui_keyring):
    run(_stale(sim, tmp_path))


async def _stale(sim, tmp_path):
    from console.tui.screens.confirm import ConfirmScreen
    from console.tui.screens.order_entry import OrderEntryScreen
    from console.tui.widgets.banner import ModeBanner
    from contract.protection import protected_price

    clock = Clock(wallclock.utcnow())
    home = tmp_path / "home"
    app = make_app(sim.url, home, clock=clock)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        pos, watch = desk.grid("positions"), desk.grid("watch")
        await wait_for(pilot, lambda: app.live.snapshot().connected, what="the stream")
        assert not any("old" in line for line in watch.visible_text() + pos.visible_text())  # fresh: no ages

        def ticked_position():  # a long position, two lots or more, whose price ticked here
            for k in pos.keys():  # noqa: SIM118
                r = pos.row(k)
                inst = desk.book.instruments[(r["exchange"], r["symbol"])]
                if (r["exchange"], r["symbol"]) in app.prices.seen_at and r[
                    "net_quantity"
                ] >= 2 * inst.lot_size:
                    return k
            return None

        key = await wait_for(pilot, ticked_position, timeout=30, what="a ticked long position")
        quote_key = (key[1], key[2])
        sim.kill()
        await wait_for(pilot, lambda: desk.query_one(ModeBanner).mode == "BACKUP", what="BACKUP")
        clock.advance(240)  # the last tick is 4 minutes old now
        await wait_for(pilot, lambda: "4 m old" in pos.line_text(pos.shown(key)), what="the position's age")
        ltp = app.prices.prices[quote_key]
        inst = desk.book.instruments[quote_key]
        assert f"{ltp:,.2f} · 4 m old" in pos.line_text(pos.shown(key))
        if watch.row(quote_key) is not None:
            assert "4 m old" in watch.line_text(watch.shown(quote_key))
        assert all("old" in line for line in watch.visible_text()[1:])  # every price on the watch is aged

        # the order form: the hint names the age; a LIMIT priced from it asks first, naming it
        pos.move_to(key)
        await pilot.press("f2")
        form = await wait_for(
            pilot, lambda: isinstance(app.screen, OrderEntryScreen) and app.screen, what="form"
        )
        form.set_fields(quantity=str(inst.lot_size), order_type="LIMIT", price=f"{ltp}")
        await pilot.pause()
        assert form.validate(), str(form.query_one("#order-error").render())
        assert f"LTP {ltp:.2f} · 4 m old" in str(form.query_one("#order-hint").render())
        depth = len(app.service.journal_entries(limit=1000))
        await pilot.press("ctrl+s")
        ask = await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, what="the question"
        )
        assert "STALE PRICE" in ask.question and "is 4 m old" in ask.question, ask.question
        await pilot.press("n")  # not sent
        await wait_for(pilot, lambda: app.screen is form, what="back on the form")
        assert "not sent" in str(form.query_one("#order-error").render())
        assert len(app.service.journal_entries(limit=1000)) == depth
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is desk, what="journaled, the form closed")
        entries = app.service.journal_entries(limit=1000)
        assert len(entries) == depth + 1
        limit_entry = entries[-1]
        assert (
            limit_entry["payload"]["order_type"] == "LIMIT"
            and Decimal(str(limit_entry["payload"]["price"])) == ltp
        )

        # a MARKET order in BACKUP is journaled only with a protection price (a LIMIT at it)
        await pilot.press("f2")
        form = await wait_for(
            pilot, lambda: isinstance(app.screen, OrderEntryScreen) and app.screen, what="form"
        )
        form.set_fields(quantity=str(inst.lot_size), order_type="MARKET", price="")
        await pilot.pause()
        assert form.validate(), str(form.query_one("#order-error").render())
        await pilot.press("ctrl+s")
        ask = await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, what="the question"
        )
        bound = protected_price(
            "SELL",
            ltp,
            tick=inst.tick_size,
            lower_band=inst.lower_band,
            upper_band=inst.upper_band,
            rule="limit_pct",
            pct=2.0,
        )
        assert bound is not None and bound < ltp
        assert "protection price" in ask.question and f"LIMIT {bound:,.2f}" in ask.question, ask.question
        assert "is 4 m old" in ask.question
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is desk, what="journaled")
        entries = app.service.journal_entries(limit=1000)
        market = entries[-1]
        assert len(entries) == depth + 2
        assert (
            market["payload"]["order_type"] == "LIMIT" and Decimal(str(market["payload"]["price"])) == bound
        )
        assert market["payload"]["side"] == "SELL" and market["payload"]["quantity"] == inst.lot_size


# --------------------------------------------------------------------------- the panel's and the ages' words


def test_the_words_for_time_left_and_a_prices_age():
    from console.tui.prices import age_text
    from console.tui.widgets.rms import countdown

    assert [countdown(s) for s in (0, 59.9, 60, 449, 3600, 21533)] == [
        "in 0 s",
        "in 59 s",
        "in 1 m 00 s",
        "in 7 m 29 s",
        "in 1 h 00 m",
        "in 5 h 58 m",
    ]
    assert [age_text(s) for s in (None, -3, 45, 240, 3900, 90000)] == [
        "age unknown",
        "0 s old",
        "45 s old",
        "4 m old",
        "1 h 05 m old",
        "1 d old",
    ]


def test_prices_are_stale_in_backup_or_once_a_hosted_stream_dropped():
    from console.live import LiveSnapshot
    from console.tui.prices import prices_stale

    up = LiveSnapshot(hosted=True, running=True, connected=True, stream_reason="connected")
    assert not prices_stale(up, "ONLINE")
    assert prices_stale(up, "BACKUP") and prices_stale(up, "UNAVAILABLE")
    assert prices_stale(
        LiveSnapshot(hosted=True, running=True, connected=False, stream_reason="closed"), "SUSPECT"
    )
    assert not prices_stale(LiveSnapshot(hosted=True, running=True), "ONLINE")  # starting: not an outage
    assert not prices_stale(LiveSnapshot(), "ONLINE")  # no runtime here (nothing says the stream is down)


def test_the_panel_after_the_cutoff_passed_done_or_the_market_closed():
    from datetime import UTC

    from console.tui.widgets.rms import RmsPanel

    panel = RmsPanel()
    panel.sample = {
        "timezone": "Asia/Kolkata",
        "settings": {"market_close": "15:30", "warn_before_minutes": [10, 5]},
        "cutoffs": [
            {
                "segment": "NSE",
                "cutoff": "15:20",
                "cutoff_at": "2026-01-05T09:50:00+00:00",
                "done_at": None,
                "will": {"cancel_mis_orders": 1, "squareoff_mis_positions": 2},
            },
            {
                "segment": "NFO",
                "cutoff": "15:25",
                "cutoff_at": "2026-01-05T09:55:00+00:00",
                "done_at": "2026-01-05T09:55:00.5+00:00",
                "will": None,
            },
        ],
        "clients": [
            {"client_id": "C2", "mtm": -100.0, "max_mtm_loss": 1000.0, "used_pct": 10.0, "mode": "normal"},
            {"client_id": "C1", "mtm": -950.0, "max_mtm_loss": 1000.0, "used_pct": 95.0, "mode": "normal"},
            {
                "client_id": "C3",
                "mtm": -1200.0,
                "max_mtm_loss": 1000.0,
                "used_pct": 120.0,
                "mode": "squareoff",
            },
        ],
    }
    panel.now = datetime(2026, 1, 5, 9, 45, 30, tzinfo=UTC)  # 15:15:30 IST
    line = panel.render_text().plain
    assert "NSE 15:20 in 4 m 30 s" in line and "NFO 15:25 done 15:25:00" in line, line
    assert "SQUARE-OFF MODE: C3" in line and "nearest MTM limit C1 95%" in line, line
    panel.expanded = True
    rows = panel.render_text().plain.splitlines()
    assert [r.split()[0] for r in rows[-3:]] == ["C3", "C1", "C2"]  # square-off mode first, then nearest
    assert "will cancel 1 pending MIS order, then square off 2 MIS positions" in rows[1], rows
    panel.expanded = False
    panel.now = datetime(2026, 1, 5, 9, 51, tzinfo=UTC)  # past NSE's cut-off, no rules running here
    assert "NSE 15:20 passed: no risk rules run on this console" in panel.render_text().plain
    panel.hosted = True
    assert "NSE 15:20 due now: the rules are running it" in panel.render_text().plain
    panel.now = datetime(2026, 1, 5, 10, 1, tzinfo=UTC)  # 15:31 IST: closed, never run late
    assert "NSE 15:20 market closed" in panel.render_text().plain
    panel.expanded = True
    assert "will " not in panel.render_text().plain
