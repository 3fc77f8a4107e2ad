"""What a dealer reads on the console is correct and readable (issue 9, section 6).

Against a real mainsim and a real store (nothing mocked but the keyring): the help
screen writes keys as people type them, grouped, with its header whole; prices show the
instrument's tick precision; symbols are never cut; the key bar keeps lock, help and quit
at 160x45 and 120x40; F1 pressed while the book loads opens the form; the default market
watch is the dealer's own book; positions show realised, unrealised, buy/sell quantity
and average, and a total; the order book shows exchange, product, trigger, average
traded price and time.  The buy/sell average derivation is checked against mainsim's own
position arithmetic (mainsim/positions.py).
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.tui_env import login, make_app, run, wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
FOUR_PLACES = re.compile(r"\d\.\d{4}\b")  # how the store keeps prices: 2965.8500
AT = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)


def _still_sim(sim_factory):
    return sim_factory(extra_args=["--tick-ms", "3600000", "--activity", "0"])


def _bod_taken(sim, home) -> Path:
    """Log in online and take the BOD on this console's store (the runtime, not started in
    most of these tests, would do it)."""
    import asyncio

    from console.service import Service
    from tests.cli_env import PASSWORD

    svc = Service(backend_url=sim.url, home=home, user="dealer1")

    async def prepare():
        await svc.login("dealer1", PASSWORD)
        await svc.sync_bod()

    try:
        asyncio.run(prepare())
    finally:
        svc.close()
    return home


# --------------------------------------------------------------------------- help and the README


def test_readme_key_table_is_markdown_table_with_keys_as_typed():
    from console.tui import keymap

    table = keymap.markdown_table()
    assert "question_mark" not in table and "| ? | Help: every key | `help` |" in table
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- keymap:start -->\n", 1)[1].split("\n<!-- keymap:end -->", 1)[0]
    assert block == table
    ids = [line.rsplit("`", 2)[1] for line in table.splitlines()[2:]]
    groups = [keymap.BY_ID[i].group for i in ids]
    assert groups == sorted(groups, key=keymap.GROUPS.index)  # orders, views, risk, screen


def test_config_takes_keys_as_the_help_writes_them():
    from console.tui.config import parse_config

    cfg = parse_config({"keys": {"help": "?,f12", "order.buy": "ctrl+?"}})
    assert cfg.keys == {"help": "question_mark,f12", "order.buy": "ctrl+question_mark"}


def test_help_keys_as_typed_grouped_and_the_header_whole(sim_factory, tmp_path, tui_keyring):
    sim = _still_sim(sim_factory)
    _bod_taken(sim, tmp_path / "home")
    run(_help(sim, tmp_path))


async def _help(sim, tmp_path):
    from console.tui import keymap
    from console.tui.screens.help import HelpScreen

    app = make_app(sim.url, tmp_path / "home", start_runtime=False)
    async with app.run_test(size=(160, 45)) as pilot:
        desk = await login(pilot)
        await pilot.press("question_mark")
        help_screen = await wait_for(
            pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen, what="help"
        )
        await pilot.pause()
        header = str(help_screen.query_one("#help-header").render())
        assert "[keys]" in header, header
        keys = {row[2]: row[0] for row in help_screen.rows}
        assert keys["help"] == "?" and keys["view.positions"] == "alt+f6" and keys["killswitch"] == "ctrl+k"
        assert not any("question_mark" in k for k in keys.values())
        groups = [keymap.BY_ID[row[2]].group for row in help_screen.rows]
        assert groups == sorted(groups, key=keymap.GROUPS.index)
        assert groups[0] == "Orders" and groups[-1] == "Screen"
        table = help_screen.query_one("#help-keys")
        assert str(table.get_row_at(0)[0]) == "Orders" and str(table.get_row_at(1)[0]) == ""
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="help closed")
        app.exit()


# --------------------------------------------------------------------------- layout: symbols, key bar, precision


@pytest.mark.parametrize("size", [(160, 45), (120, 40)])
def test_symbols_whole_prices_at_tick_and_the_key_bar_keeps_lock_help_quit(
    sim_factory, tmp_path, tui_keyring, size
):
    sim = _still_sim(sim_factory)
    _bod_taken(sim, tmp_path / "home")
    run(_layout(sim, tmp_path, size))


async def _layout(sim, tmp_path, size):
    from console.tui.screens.order_entry import ModifyScreen, OrderEntryScreen
    from console.tui.widgets.keybar import KeyBar

    app = make_app(sim.url, tmp_path / "home", start_runtime=False)
    async with app.run_test(size=size) as pilot:
        desk = await login(pilot)
        await pilot.pause()
        bar = desk.query_one(KeyBar)
        line = bar.line()
        assert len(line) <= size[0]
        for shown in ("ctrl+l Lock", "? Help", "ctrl+q Quit", "f1 Buy", "f2 Sell"):
            assert shown in line, line
        assert str(bar.render()) == line  # what is drawn
        longest = max(len(s) for (_e, s) in desk.book.instruments)
        assert longest > 14  # futures: NIFTY26JANFUT, BANKNIFTY26JANFUT ...
        for name in ("positions", "orders", "watch"):
            desk.action_show(name)
            await pilot.pause()
            g = desk.grid(name)
            lines = g.visible_text()
            assert g.row_count and not any("…" in line for line in lines), name
            assert not any(FOUR_PLACES.search(line) for line in lines), (name, lines[:3])
            symbols = {g.row(k)["symbol"] for k in g.keys()}  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            assert all(re.search(rf"(^| ){re.escape(s)}( |$)", "\n".join(lines)) for s in symbols)
        # the order form's hint shows the instrument at its tick (0.05: two places)
        desk.action_show("watch")
        await pilot.pause()
        await pilot.press("f1")
        form = await wait_for(
            pilot, lambda: isinstance(app.screen, OrderEntryScreen) and app.screen, what="form"
        )
        await pilot.pause()
        hint = str(form.query_one("#order-hint").render())
        inst = desk.book.instruments[(form.fields()["exchange"], form.fields()["symbol"])]
        assert inst.tick_size == Decimal("0.05")
        assert f"LTP {inst.last_price:.2f} " in hint and "tick 0.05 " in hint, hint
        assert not FOUR_PLACES.search(hint), hint
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="form closed")
        # modify: the price to edit at the tick too
        desk.action_show("orders")
        og = desk.grid("orders")
        oid = next(k for k in og.keys() if og.row(k)["price"] is not None and og.row(k)["status"] == "OPEN")  # noqa: SIM118 - Grid.keys(): a widget, not a dict
        og.move_to(oid)
        await pilot.press("shift+f2")
        mod = await wait_for(
            pilot, lambda: isinstance(app.screen, ModifyScreen) and app.screen, what="modify"
        )
        assert mod.query_one("#m-price").value == f"{og.row(oid)['price']:.2f}"
        await pilot.press("escape")
        app.exit()


# --------------------------------------------------------------------------- F1 while the book loads


def test_f1_while_the_book_is_loading_opens_the_form_and_fills_it_once_in(sim_factory, tmp_path, tui_keyring):
    sim = _still_sim(sim_factory)
    _bod_taken(sim, tmp_path / "home")
    run(_f1_early(sim, tmp_path))


async def _f1_early(sim, tmp_path):
    from console.tui.screens.desk import DeskScreen
    from console.tui.screens.login import LoginScreen
    from console.tui.screens.order_entry import OrderEntryScreen

    app = make_app(sim.url, tmp_path / "home", start_runtime=False)
    # The book is read from the real store in a worker; hold that read until F1 is in, so
    # the key surely arrives first (on a fast machine the read could otherwise win).
    gate = threading.Event()
    real_local_book = app.session.local_book

    def held_local_book():
        gate.wait(20)
        return real_local_book()

    app.session.local_book = held_local_book
    async with app.run_test(size=(160, 45)) as pilot:
        screen = await wait_for(
            pilot, lambda: isinstance(app.screen, LoginScreen) and app.screen, what="login"
        )
        await wait_for(pilot, lambda: screen.online is not None, what="the login probe")
        screen.query_one("#login-password").value = "demo"
        await pilot.press("enter")
        desk = await wait_for(
            pilot, lambda: isinstance(app.screen, DeskScreen) and app.screen, what="the desk"
        )
        assert desk.book is None
        await pilot.press("f1")
        form = await wait_for(
            pilot,
            lambda: isinstance(app.screen, OrderEntryScreen) and app.screen,
            what="the order form while the book loads",
        )
        assert form.book is None and not form.validate()
        assert "loading" in str(form.query_one("#order-error").render())
        assert not any("still loading" in str(n.message) for n in app._notifications)
        gate.set()
        await wait_for(pilot, lambda: form.book is not None, what="the form to get the book")
        assert form.fields()["client"] == desk.book.clients[0]
        inst = sorted(
            (i for (e, _s), i in desk.book.instruments.items() if e == "NSE"), key=lambda i: i.symbol
        )[0]
        form.set_fields(exchange="NSE", symbol=inst.symbol, quantity=str(inst.lot_size))
        await pilot.pause()
        assert form.validate(), str(form.query_one("#order-error").render())
        await pilot.press("escape")
        app.exit()


# --------------------------------------------------------------------------- default market watch


def test_default_market_watch_is_the_dealers_own_book(sim_factory, tmp_path, tui_keyring):
    sim = _still_sim(sim_factory)
    _bod_taken(sim, tmp_path / "home")
    run(_watch(sim, tmp_path))


async def _watch(sim, tmp_path):
    app = make_app(sim.url, tmp_path / "home", start_runtime=False)
    async with app.run_test(size=(160, 45)) as pilot:
        desk = await login(pilot)
        book = desk.book
        own = {(p.exchange.value, p.symbol) for p in book.positions}
        own |= {
            (o.exchange.value, o.symbol) for o in book.orders if o.status.value in ("OPEN", "TRIGGER_PENDING")
        }
        watch = desk.grid("watch")
        assert set(watch.keys()) == own
        assert len(own) < len(book.instruments)  # not the whole reference data
        symbols = [k[1] for k in watch.keys()]  # noqa: SIM118 - Grid.keys(): a widget, not a dict
        assert symbols == sorted(symbols)
        app.exit()


# --------------------------------------------------------------------------- positions and order book


def _position(**kw):
    from contract import wire

    base = dict(
        client_id="C1",
        exchange="NSE",
        symbol="X",
        product="MIS",
        net_quantity=0,
        average_price=0,
        last_price=100,
        realised_pnl=0,
        mtm=0,
        buy_quantity=0,
        sell_quantity=0,
        updated_at=AT,
    )
    return wire.Position(**{**base, **kw})


def _trade(n, side, qty, price):
    from contract import wire

    return wire.Trade(
        trade_id=f"T{n}",
        order_id=f"O{n}",
        client_order_id=f"X{n}",
        client_id="C1",
        exchange="NSE",
        symbol="X",
        side=side,
        product="MIS",
        quantity=qty,
        price=Decimal(price),
        traded_at=AT,
    )


@pytest.mark.parametrize(
    "carried, fills",
    [
        (0, [("BUY", 10, "100"), ("SELL", 4, "110"), ("BUY", 6, "95.5"), ("SELL", 20, "120.25")]),
        (50, [("SELL", 20, "110"), ("BUY", 5, "90"), ("SELL", 35, "101.05")]),  # carried long, flattened
        (-30, [("BUY", 10, "99"), ("SELL", 5, "101"), ("BUY", 40, "104.35")]),  # carried short, reversed
        (40, []),  # untouched carried position
    ],
)
def test_buy_and_sell_averages_follow_mainsim_arithmetic(carried, fills):
    """mainsim books the fills (its own apply_fill); the desk derives the side averages
    from the position main sends plus the fills, and gets the true averages."""
    from console.tui.widgets import panels
    from contract import wire
    from mainsim.positions import apply_fill

    avg0 = Decimal("101.35")
    pos = _position(
        net_quantity=carried,
        average_price=avg0 if carried else 0,
        buy_quantity=max(carried, 0),
        sell_quantity=max(-carried, 0),
    )
    buy_v = Decimal(max(carried, 0)) * avg0
    sell_v = Decimal(max(-carried, 0)) * avg0
    trades = []
    for n, (side, qty, price) in enumerate(fills):
        apply_fill(pos, wire.Side(side), qty, Decimal(price), AT)
        trades.append(_trade(n, side, qty, price))
        if side == "BUY":
            buy_v += qty * Decimal(price)
        else:
            sell_v += qty * Decimal(price)
    totals = panels.fill_totals(trades).get(("C1", "NSE", "X", "MIS"))
    row = panels.position_row(pos, Decimal("0.05"), totals)
    want_buy = (buy_v / pos.buy_quantity).quantize(Decimal("0.01")) if pos.buy_quantity else None
    want_sell = (sell_v / pos.sell_quantity).quantize(Decimal("0.01")) if pos.sell_quantity else None
    assert (row["buy_average"], row["sell_average"]) == (want_buy, want_sell)
    assert row["unrealised_pnl"] == pos.mtm - pos.realised_pnl
    assert row["realised_pnl"] + row["unrealised_pnl"] == pos.mtm


def test_side_averages_blank_when_the_fills_do_not_explain_the_quantities():
    from console.tui.widgets import panels

    # a fill the position does not count yet (the trade came before the position update)
    pos = _position(net_quantity=10, average_price=100, buy_quantity=10)
    totals = panels.fill_totals([_trade(1, "BUY", 10, "100"), _trade(2, "BUY", 5, "101")])
    assert panels.side_averages(pos, totals[("C1", "NSE", "X", "MIS")]) == (None, None)


def test_positions_realised_unrealised_averages_total_and_the_order_book_columns(
    sim_factory, tmp_path, tui_keyring
):
    sim = _still_sim(sim_factory)
    _bod_taken(sim, tmp_path / "home")
    run(_positions(sim, tmp_path))


async def _positions(sim, tmp_path):
    from contract.wire import OrderType, Side
    from sync.trading.policy import OrderTicket

    app = make_app(sim.url, tmp_path / "home")  # the runtime runs: the fill and position come live
    async with app.run_test(size=(160, 45)) as pilot:
        desk = await login(pilot)
        pos = desk.grid("positions")
        labels = [c.label for c in pos.columns]
        for want in (
            "Net qty",
            "Avg",
            "LTP",
            "MTM",
            "Realised",
            "Unrealised",
            "Buy qty",
            "Buy avg",
            "Sell qty",
            "Sell avg",
        ):
            assert want in labels
        # flatten one long position with a market order on main: the row goes flat, its MTM is all realised
        key = next(
            k
            for k in pos.keys()  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            if pos.row(k)["net_quantity"] > 0 and pos.row(k)["exchange"] == "NSE"
        )
        row = pos.row(key)
        qty, avg = row["net_quantity"], Decimal(row["average_price"])
        ticket = OrderTicket(
            client_id=key[0],
            exchange=key[1],
            symbol=key[2],
            side=Side.SELL,
            quantity=qty,
            product=key[3],
            order_type=OrderType.MARKET,
            price=None,
            trigger_price=None,
        )
        app.run_trade(lambda s: s.place(ticket, validity="DAY", disclosed_quantity=None), reply_to=desk)
        await wait_for(pilot, lambda: pos.row(key)["net_quantity"] == 0, timeout=30, what="the flat position")
        await wait_for(pilot, lambda: pos.row(key)["sell_average"] is not None, what="the sell average")
        flat = pos.row(key)
        trades = desk.grid("trades")
        sold = [
            trades.row(k)
            for k in trades.keys()  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            if trades.row(k)["symbol"] == key[2]
            and trades.row(k)["client_id"] == key[0]
            and trades.row(k)["side"] == "SELL"
        ]
        assert sold, "the fill in the trade book"
        price = sum(Decimal(t["price"]) * t["quantity"] for t in sold) / sum(t["quantity"] for t in sold)
        assert flat["unrealised_pnl"] == 0 and flat["realised_pnl"] == flat["mtm"] != 0
        assert flat["buy_quantity"] == qty and flat["sell_quantity"] == qty
        assert flat["buy_average"] == avg.quantize(Decimal("0.01"))
        assert flat["sell_average"] == price.quantize(Decimal("0.01"))
        assert flat["realised_pnl"] == ((price - avg) * qty).quantize(Decimal("0.01"))

        # the total line: every row's realised, unrealised and MTM summed, as shown
        def shown_total():
            rows = [pos.row(k) for k in pos.keys()]  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            sums = {f: sum(Decimal(r[f]) for r in rows) for f in ("mtm", "realised_pnl", "unrealised_pnl")}
            return pos.summary and all(pos.summary[f] == v for f, v in sums.items()) and rows

        rows = await wait_for(pilot, shown_total, what="the total line to sum the rows shown")
        total = pos.summary
        assert total["client_id"] == "Total"
        assert total["realised_pnl"] == sum(Decimal(r["realised_pnl"]) for r in rows)
        assert pos.visible_text()[-1].startswith("Total")
        # the order book: exchange, product, trigger, average traded price, time
        og = desk.grid("orders")
        labels = [c.label for c in og.columns]
        for want in ("Exch", "Prod", "Trigger", "Avg traded", "Time UTC"):
            assert want in labels
        await wait_for(
            pilot,
            lambda: any(
                og.row(k)["status"] == "COMPLETE" and og.row(k)["symbol"] == key[2]
                for k in og.keys()  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            ),
            what="the filled order",
        )
        done = next(
            og.row(k)
            for k in og.keys()  # noqa: SIM118 - Grid.keys(): a widget, not a dict
            if og.row(k)["status"] == "COMPLETE" and og.row(k)["symbol"] == key[2]
        )
        assert done["exchange"] == key[1] and done["product"] == key[3]
        assert Decimal(done["average_price"]) == price and re.fullmatch(r"\d\d:\d\d:\d\d", done["time"])
        sl = next(og.row(k) for k in og.keys() if og.row(k)["order_type"] in ("SL", "SL-M"))  # noqa: SIM118 - Grid.keys(): a widget, not a dict
        assert og.line_text(sl).count(f"{sl['trigger_price']:,.2f}") == 1
        app.exit()
