"""The dealer console against a real mainsim and a real store: login, orders, square-off,
cancel, the mode banner.  Pilot drives the real app; nothing is mocked but the keyring."""

from __future__ import annotations

import pytest

from tests.tui_env import SIZE, login, make_app, run, wait_for

pytestmark = pytest.mark.timeout(90)


async def _main_orders(url: str, home):
    """What mainsim itself holds (another Service on the same console, token from the keyring)."""
    from console.service import Service

    svc = Service(backend_url=url, home=home, user="dealer1")
    try:
        return await svc.orders()
    finally:
        svc.close()


def _resting_limit(book, client_id):
    """A BUY LIMIT two ticks above the lower band: valid, and it will rest (OPEN)."""
    inst = sorted((i for (e, _s), i in book.instruments.items() if e == "NSE"), key=lambda i: i.symbol)[0]
    return inst, inst.lower_band + 2 * inst.tick_size


def test_order_entry_reaches_main_then_modify_and_cancel_from_the_order_book(sim, tmp_path, tui_keyring):
    run(_order_lifecycle(sim, tmp_path))


async def _order_lifecycle(sim, tmp_path):
    from console.tui.screens.confirm import ConfirmScreen
    from console.tui.screens.order_entry import ModifyScreen, OrderEntryScreen

    home = tmp_path / "home"
    app = make_app(sim.url, home)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        client = desk.book.clients[0]
        inst, price = _resting_limit(desk.book, client)
        await pilot.press("f1")
        form = await wait_for(
            pilot, lambda: isinstance(app.screen, OrderEntryScreen) and app.screen, what="order form"
        )
        # inline validation: a quantity off the lot size and a price off the tick are refused before sending
        form.set_fields(
            client=client,
            exchange="NSE",
            symbol=inst.symbol,
            order_type="LIMIT",
            quantity=str(inst.lot_size + 1) if inst.lot_size > 1 else "0",
            price=str(price),
        )
        await pilot.pause()
        assert not form.validate()
        assert "lot size" in str(form.query_one("#order-error").render()) or "greater than zero" in str(
            form.query_one("#order-error").render()
        )
        form.set_fields(quantity=str(inst.lot_size), price=str(price + inst.tick_size / 2))
        await pilot.pause()
        assert not form.validate() and "tick size" in str(form.query_one("#order-error").render())
        form.set_fields(price=str(inst.upper_band + inst.tick_size))
        await pilot.pause()
        assert not form.validate() and "band" in str(form.query_one("#order-error").render())
        form.set_fields(price=str(price))
        await pilot.pause()
        assert form.validate()
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is desk, what="the form to close on success")
        main = [
            o for o in await _main_orders(sim.url, home) if o.symbol == inst.symbol and o.client_id == client
        ]
        assert len(main) == 1 and main[0].status.value == "OPEN" and main[0].price == price
        assert main[0].quantity == inst.lot_size and main[0].side.value == "BUY"
        oid = main[0].order_id

        # the order book shows it (from the live stream), select it and modify the quantity
        await pilot.press("f3")
        og = desk.grid("orders")
        await wait_for(pilot, lambda: og.row(oid) is not None, what="the order in the order book")
        assert og.move_to(oid)
        await pilot.press("shift+f2")
        mod = await wait_for(
            pilot, lambda: isinstance(app.screen, ModifyScreen) and app.screen, what="modify form"
        )
        mod.query_one("#m-quantity").value = str(2 * inst.lot_size)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is desk, what="modify to finish")
        await wait_for(pilot, lambda: og.row(oid)["quantity"] == 2 * inst.lot_size, what="modified quantity")

        # cancel from the order book: Delete, confirm with y
        og.move_to(oid)
        await pilot.press("delete")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="cancel confirmation")
        await pilot.press("y")
        await wait_for(
            pilot, lambda: og.row(oid)["status"] == "CANCELLED", what="CANCELLED in the order book"
        )
        main = {o.order_id: o for o in await _main_orders(sim.url, home)}
        assert main[oid].status.value == "CANCELLED" and main[oid].quantity == 2 * inst.lot_size
        app.exit()


async def _main_positions(url: str, home, client_id: str):
    from console.service import Service

    svc = Service(backend_url=url, home=home, user="dealer1")
    try:
        return await svc.positions(client_id)
    finally:
        svc.close()


def test_online_login_desk_then_client_squareoff_preview_and_confirm(sim, tmp_path, tui_keyring):
    run(_squareoff_client(sim, tmp_path))


async def _squareoff_client(sim, tmp_path):
    from textual.widgets import DataTable, Select

    from console.tui.screens.squareoff import SquareOffScreen
    from console.tui.widgets.banner import ModeBanner
    from console.tui.widgets.status_bar import StatusBar

    home = tmp_path / "home"
    app = make_app(sim.url, home)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)  # asserts the login screen said ONLINE
        assert app.session.identity.how == "ONLINE"
        assert str(desk.query_one(ModeBanner).render()).startswith(" ONLINE")
        pos = desk.grid("positions")
        await wait_for(pilot, lambda: pos.row_count > 0, what="positions")
        assert pos.row_count == len(app.service.local_positions())  # the runtime's snapshot, on screen
        bar = desk.query_one(StatusBar)
        await wait_for(pilot, lambda: "dealer1 (dealer, online)" in bar.line(), what="status bar user")
        assert "main " in bar.line() and "journal 0" in bar.line() and "BOD " in bar.line()
        client = pos.row(pos.cursor_key)["client_id"]
        before = [p for p in await _main_positions(sim.url, home, client) if p.net_quantity]
        assert before, "the demo data gives every client open positions"
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        so.query_one("#so-scope", Select).value = "client"
        await wait_for(
            pilot,
            lambda: so.preview is not None and so.preview_scope == {"client_id": client},
            what="the client preview",
        )
        legs = so.preview.legs
        assert so.preview.dry_run and len(legs) == len(before)
        assert {(leg["symbol"], leg["quantity"], leg["side"]) for leg in legs} == {
            (p.symbol, abs(p.net_quantity), "SELL" if p.net_quantity > 0 else "BUY") for p in before
        }
        assert so.query_one("#so-legs", DataTable).row_count == len(legs)
        # nothing was sent by the preview
        nets = lambda ps: sorted((p.symbol, p.product.value, p.net_quantity) for p in ps if p.net_quantity)  # noqa: E731
        assert nets(await _main_positions(sim.url, home, client)) == nets(before)
        await pilot.press("y")
        await wait_for(pilot, lambda: so.result is not None, what="the square-off result")
        assert not so.result.rejected and so.result.mode == "ONLINE"
        assert nets(await _main_positions(sim.url, home, client)) == []
        await pilot.press("escape")
        await wait_for(
            pilot,
            lambda: all(pos.row(k)["net_quantity"] == 0 for k in pos.keys() if k[0] == client),  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            what="flat positions on the desk",
        )
        app.exit()


def test_banner_follows_main_down_and_back_and_the_desk_shows_the_reconciled_book(
    sim_factory, tmp_path, tui_keyring
):
    run(_banner(sim_factory(), tmp_path))


async def _banner(sim, tmp_path):
    from console.tui.screens.reconciliation import ReconciliationScreen
    from console.tui.screens.squareoff import SquareOffScreen
    from console.tui.widgets.banner import ModeBanner

    app = make_app(sim.url, tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        banner = desk.query_one(ModeBanner)
        await wait_for(
            pilot,
            lambda: app.live.snapshot().connected,
            what="the stream",
        )
        sim.kill()
        await wait_for(pilot, lambda: banner.mode == "BACKUP", what="BACKUP on the banner")
        assert banner.has_class("mode-backup") and "BACKUP" in str(banner.render())
        assert "SUSPECT" in app.mode_history
        # a square-off journaled in BACKUP (the dealer's password from the login)
        pos = desk.grid("positions")
        open_key = next(k for k in pos.keys() if pos.row(k)["net_quantity"] != 0)  # noqa: SIM118 - Grid.keys(): a widget, not a dict
        pos.move_to(open_key)
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        await wait_for(pilot, lambda: so.preview is not None, what="the preview")
        await pilot.press("y")
        await wait_for(pilot, lambda: so.result is not None, what="the journaled square-off")
        assert so.result.mode == "BACKUP" and so.result.journal_seqs
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="the desk")
        assert pos.row(open_key)["net_quantity"] != 0  # journaled, not yet on main nor in the mirror
        sim.start()  # same port, same data
        # main back: RECOVERING, the runtime replays and reconciles, and the console shows the
        # report and the reconciled book by itself (no key pressed)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ReconciliationScreen),
            timeout=30,
            what="the reconciliation report over the desk",
        )
        report = app.screen.report
        assert report is app.recoveries[-1].report and report["counts"]["applied"] >= 1, report
        await wait_for(
            pilot, lambda: pos.row(open_key)["net_quantity"] == 0, what="the flat position on the desk"
        )
        await wait_for(pilot, lambda: banner.mode == "ONLINE", timeout=30, what="ONLINE again")
        assert banner.has_class("mode-online") and banner.progress == ""
        hist = app.mode_history
        assert hist.index("BACKUP") < hist.index("RECOVERING") < len(hist) - 1 and hist[-1] == "ONLINE", hist
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="the report closed")
        app.exit()


def test_offline_login_when_main_is_down_and_backup_squareoff_is_journaled(sim, tmp_path, tui_keyring):
    from console.service import Service

    home = tmp_path / "home"
    svc = Service(backend_url=sim.url, home=home, user="dealer1")  # the earlier online login and BOD
    try:
        run(svc.login("dealer1", "demo"))
        run(svc.sync_bod())
    finally:
        svc.close()
    port = sim.port
    sim.kill()
    run(_offline(f"http://127.0.0.1:{port}", home))


async def _offline(url, home):
    from console.tui.screens.login import LoginScreen
    from console.tui.screens.squareoff import SquareOffScreen
    from console.tui.widgets.banner import ModeBanner

    app = make_app(url, home)
    async with app.run_test(size=SIZE) as pilot:
        # a wrong password is refused on the login screen, inline
        screen = await wait_for(
            pilot,
            lambda: isinstance(app.screen, LoginScreen) and app.screen.online is False and app.screen,
            what="the OFFLINE login hint",
        )
        screen.query_one("#login-password").value = "wrong"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: "wrong password" in str(screen.query_one("#login-error").render()),
            what="the inline error",
        )
        desk = await login(pilot, expect="OFFLINE")
        assert app.session.identity.how == "OFFLINE"
        banner = desk.query_one(ModeBanner)
        await wait_for(pilot, lambda: banner.mode == "BACKUP", what="BACKUP")
        pos = desk.grid("positions")
        assert pos.row_count == len(app.service.local_positions())
        open_key = next(k for k in pos.keys() if pos.row(k)["net_quantity"] != 0)  # noqa: SIM118 - Grid.keys(): a widget, not a dict
        pos.move_to(open_key)
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        await wait_for(pilot, lambda: so.preview is not None, what="the preview")
        assert so.preview.mode == "BACKUP" and len(so.preview.legs) >= 1
        assert {leg["symbol"] for leg in so.preview.legs} == {open_key[2]}
        await pilot.press("y")
        await wait_for(pilot, lambda: so.result is not None, what="the journaled square-off")
        assert so.result.mode == "BACKUP" and so.result.journal_seqs
        await pilot.press("escape")
        await pilot.press("f9")
        jg = desk.grid("journal")
        await wait_for(pilot, lambda: jg.row_count >= 1, what="the journal view")
        row = jg.row(jg.keys()[-1])
        assert (
            row["kind"] == "SQUARE_OFF" and row["symbol"] == open_key[2] and row["client_id"] == open_key[0]
        )
        app.exit()


def test_idle_lock_help_and_a_rebound_key(sim, tmp_path, tui_keyring):
    run(_lock_help_rebind(sim, tmp_path))


async def _lock_help_rebind(sim, tmp_path):
    from textual.widgets import DataTable

    from console.tui import keymap
    from console.tui.config import parse_config
    from console.tui.screens.confirm import AskScreen
    from console.tui.screens.help import HelpScreen
    from console.tui.screens.lock import LockScreen
    from console.tui.screens.order_entry import OrderEntryScreen

    cfg = parse_config({"console": {"idle_lock_minutes": 0.02}, "keys": {"order.buy": "f5"}})
    app = make_app(sim.url, tmp_path / "home", config=cfg)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        # idle for 1.2 s: the lock covers the desk; a wrong password keeps it, the right one opens it
        lock = await wait_for(
            pilot, lambda: isinstance(app.screen, LockScreen) and app.screen, what="the idle lock"
        )
        lock.query_one("#lock-password").value = "nope"
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: "wrong password" in str(lock.query_one("#lock-error").render()), what="refusal"
        )
        assert isinstance(app.screen, LockScreen)
        await pilot.press("f2")  # trading keys do nothing while locked
        assert isinstance(app.screen, LockScreen)
        lock.query_one("#lock-password").value = "demo"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is desk, what="unlocked")
        assert not app.locked
        app.config.idle_lock_minutes = 60  # no lock during the rest
        # help lists every key in force, the rebound one with its new key
        await pilot.press("question_mark")
        help_screen = await wait_for(
            pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen, what="help"
        )
        rows = {row[2]: row[0] for row in help_screen.rows}
        ids = {k.id for k in keymap.ALL_KEYS}  # the console's keys (the demo adds its own)
        assert set(rows) == ids, ids ^ set(rows)
        assert rows["order.buy"] == "f5" and rows["order.sell"] == "f2" and rows["view.positions"] == "alt+f6"
        assert help_screen.query_one(DataTable).row_count == len(ids)
        # the command palette offers the desk's actions on the desk (and not on the help screen)
        offered = {c.title for c in app.get_system_commands(desk)}
        assert {
            "Buy order",
            "Square off",
            "Kill switch",
            "Order book",
            "Lock screen",
            "Replay and reconciliation",
        } <= offered
        assert "Buy order" not in {c.title for c in app.get_system_commands(help_screen)}
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="help closed")
        # the rebound key works, the old one no longer does
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert app.screen is desk
        await pilot.press("f5")
        form = await wait_for(
            pilot, lambda: isinstance(app.screen, OrderEntryScreen) and app.screen, what="F5 buy"
        )
        assert form.side == "BUY"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="form closed")
        # market watch: remove the highlighted symbol, add it back by name; an unknown one is refused
        await pilot.press("f4")
        watch = desk.grid("watch")
        first = watch.cursor_key
        assert first is not None and desk.panel == "watch"
        await pilot.press("ctrl+d")
        assert watch.row(first) is None and f"{first[0]}:{first[1]}" not in app.watch_symbols
        await pilot.press("insert")
        ask = await wait_for(
            pilot, lambda: isinstance(app.screen, AskScreen) and app.screen, what="add symbol"
        )
        ask.query_one("#ask-input").value = f"{first[0]}:{first[1]}"
        await pilot.press("enter")
        await wait_for(pilot, lambda: watch.row(first) is not None, what="the symbol back in the watch")
        assert app.watch_symbols[-1] == f"{first[0]}:{first[1]}"
        await pilot.press("insert")
        ask = await wait_for(
            pilot, lambda: isinstance(app.screen, AskScreen) and app.screen, what="add symbol"
        )
        ask.query_one("#ask-input").value = "NSE:NOSUCHTHING"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: any("No instrument NSE:NOSUCHTHING" in str(n.message) for n in app._notifications),
            what="the refusal",
        )
        app.exit()
