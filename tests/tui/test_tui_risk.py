"""The console never hides risk (issue 9, section 5), against a real mainsim and a real store:
a journaled square-off is marked on its position and a second F10 says so; the preview lists
the open orders it cancels; ctrl+q with unsent journal entries asks first and the exit note
lists them and says who sends them; the lock screen shows nothing of the book and the
palette offers nothing while locked; a wrong unlock password is not an "offline login"."""

from __future__ import annotations

import html
import re
import signal
import time

import pytest

from tests.tui_env import SIZE, login, make_app, run, wait_for

pytestmark = pytest.mark.timeout(120)


def _screen_text(app) -> str:
    """What the terminal shows, as text (the SVG screenshot's text, unescaped)."""
    svg = app.export_screenshot()
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


# --------------------------------------------------------------------------- square-off journaled, quit


def test_backup_squareoff_is_marked_a_second_f10_says_so_and_quit_asks_then_lists_it(
    sim_factory, tmp_path, tui_keyring, capsys
):
    run(_journaled_then_quit(sim_factory(), tmp_path, capsys))


async def _journaled_then_quit(sim, tmp_path, capsys):
    from textual.widgets import DataTable, Static

    from console.shutdown import tell_unsent
    from console.tui.screens.confirm import ConfirmScreen
    from console.tui.screens.squareoff import SquareOffScreen
    from console.tui.widgets.banner import ModeBanner

    app = make_app(sim.url, tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        await wait_for(
            pilot,
            lambda: app.live.snapshot().connected,
            what="the stream",
        )
        sim.kill()
        banner = desk.query_one(ModeBanner)
        await wait_for(pilot, lambda: banner.mode == "BACKUP", what="BACKUP")
        pos = desk.grid("positions")
        key = next(k for k in pos.keys() if pos.row(k)["net_quantity"] != 0)  # noqa: SIM118 - Grid.keys(): a widget, not a dict
        net = pos.row(key)["net_quantity"]
        assert not pos.row(key).get("squareoff")
        pos.move_to(key)
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        await wait_for(pilot, lambda: so.preview is not None, what="the preview")
        assert not so.query_one("#so-already").display and not so.already  # nothing journaled yet
        await pilot.press("y")
        await wait_for(pilot, lambda: so.result is not None, what="the journaled square-off")
        seq = so.result.journal_seqs[-1]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="the desk")

        # the position shows the square-off journaled for it, with its quantity
        marker = f"SQ {abs(net)} pending"
        await wait_for(pilot, lambda: pos.row(key).get("squareoff") == marker, what="the square-off marker")
        assert pos.row(key)["net_quantity"] == net  # not on main yet: the position itself is unchanged
        assert any(marker in line and key[2] in line for line in pos.visible_text()), pos.visible_text()

        # a second F10 on it says so before the same leg is offered again
        pos.move_to(key)
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="F10 again"
        )
        await wait_for(pilot, lambda: so.preview is not None, what="the second preview")
        warning = so.query_one("#so-already", Static)
        assert warning.display
        text = str(warning.render())
        assert "ALREADY JOURNALED" in text and key[2] in text and f"#{seq} pending" in text, text
        legs = so.query_one("#so-legs", DataTable)
        assert f"AGAIN (#{seq} pending)" in str(legs.get_row_at(0)[-1])
        assert "journal it again" in str(so.query_one("#so-status", Static).render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is desk, what="the desk")

        # ctrl+q asks first: one entry not yet on main, and who sends it
        await pilot.press("ctrl+q")
        ask = await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, what="quit question"
        )
        question = ask.question
        assert "1 journal entry is not yet on the main system (1 SQUARE_OFF)" in question, question
        assert "no agent runs on this store" in question and "next start" in question, question
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is desk, what="still running after 'n'")
        assert app.is_running
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="quit question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, what="the app to quit")

    # the note on stderr once the screen is gone (what run_console and the demo print)
    capsys.readouterr()
    try:
        assert tell_unsent(app.service) == 1
    finally:
        app.service.close()
    err = capsys.readouterr().err
    assert "lifeboat: 1 journal entry is not yet on the main system:" in err, err
    assert re.search(
        rf"#{seq} SQUARE_OFF {key[0]} {key[1]}:{key[2]} {key[3]} qty {abs(net)} \(pending; ", err
    ), err
    assert "No agent runs on this store: they will be sent at the next start" in err, err


def test_quit_with_nothing_unsent_quits_at_once(sim, tmp_path, tui_keyring):
    run(_quit_clean(sim, tmp_path))


async def _quit_clean(sim, tmp_path):
    app = make_app(sim.url, tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to quit")
    app.service.close()


def test_the_exit_note_names_a_running_agent(sim, cli_factory):
    """A real `lifeboat agent` on the store: the note (and the quit question) say it sends them."""
    from console.shutdown import running_agent, unsent_note

    cli = cli_factory(sim.url)
    cli.login().ok()
    assert running_agent(cli.home) is None
    agent = cli.popen("agent")
    try:
        deadline = time.monotonic() + 30
        while running_agent(cli.home) is None:
            assert agent.poll() is None and time.monotonic() < deadline, agent.communicate()[1]
            time.sleep(0.1)
        assert running_agent(cli.home) == agent.pid
        entry = {
            "seq": 7,
            "kind": "CANCEL",
            "client_id": "C1",
            "exchange": "NSE",
            "symbol": "INFY",
            "state": "pending",
            "client_order_id": "X-1",
            "payload": {},
        }
        note = unsent_note([entry], running_agent(cli.home))
        assert f"They will be sent by the agent running on this store (pid {agent.pid})" in note, note
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=20)
    assert running_agent(cli.home) is None  # the lock went with the process


# --------------------------------------------------------------------------- the preview lists the cancels


def test_squareoff_preview_lists_the_open_orders_it_will_cancel(sim, tmp_path, tui_keyring):
    run(_cancels(sim, tmp_path))


async def _cancels(sim, tmp_path):
    from textual.widgets import DataTable, Select

    from console.tui.screens.squareoff import SquareOffScreen
    from contract.enums import OrderType, Side
    from sync.trading.policy import OrderTicket

    app = make_app(sim.url, tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        client = desk.book.clients[0]
        inst = sorted(
            (i for (e, _s), i in desk.book.instruments.items() if e == "NSE"), key=lambda i: i.symbol
        )[0]
        price = inst.lower_band + 2 * inst.tick_size  # valid, and it rests (OPEN)
        ticket = OrderTicket(
            client_id=client,
            exchange="NSE",
            symbol=inst.symbol,
            side=Side.BUY,
            quantity=inst.lot_size,
            product="MIS",
            order_type=OrderType.LIMIT,
            price=price,
        )
        placed = await app.session.place(ticket, validity="DAY", disclosed_quantity=None)
        assert not placed.rejected, placed.as_dict()
        orders = [
            o
            for o in await app.service.orders(client)
            if o.symbol == inst.symbol and o.status.value == "OPEN"
        ]
        assert len(orders) == 1, "the resting order is on main"
        oid = orders[0].order_id
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        so.query_one("#so-scope", Select).value = "client"
        so.query_one("#so-client", Select).value = client
        await wait_for(
            pilot,
            lambda: so.preview is not None and so.preview_scope == {"client_id": client},
            what="the client preview",
        )
        table = so.query_one("#so-cancels", DataTable)
        assert table.display
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert any(
            str(r[0]) == str(oid) and str(r[1]) == client and str(r[2]) == inst.symbol for r in rows
        ), rows
        assert table.row_count == len(so.preview.cancels)
        await pilot.press("escape")
        app.exit()


# --------------------------------------------------------------------------- the lock


def test_lock_hides_the_book_holds_notices_and_the_palette_offers_nothing(sim, tmp_path, tui_keyring):
    run(_lock(sim, tmp_path))


async def _lock(sim, tmp_path):
    from textual.command import CommandPalette

    from console.tui.screens.lock import LockScreen

    app = make_app(sim.url, tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        pos = desk.grid("positions")
        await wait_for(pilot, lambda: pos.row_count > 0, what="positions")
        row = pos.row(pos.cursor_key)
        before = _screen_text(app)
        assert row["client_id"] in before and row["symbol"] in before  # the check below can see them
        app.notify(f"Square-off: 2 legs for {row['client_id']}")
        await pilot.press("ctrl+l")
        lock = await wait_for(
            pilot, lambda: isinstance(app.screen, LockScreen) and app.screen, what="the lock"
        )
        await pilot.pause(0.3)
        shown = _screen_text(app)
        assert "LOCKED" in shown
        for client in desk.book.clients:
            assert client not in shown, f"{client} readable around the lock"
        assert row["symbol"] not in shown and "MTM" not in shown and "Net qty" not in shown
        # a notice arriving while locked waits (it names a client), and so did the one on screen
        app.notify(f"Order rejected for {row['client_id']}")
        assert not any(row["client_id"] in str(n.message) for n in app._notifications)
        # the palette offers nothing while locked: it does not open
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        assert not CommandPalette.is_open(app) and app.screen is lock
        assert list(app.get_system_commands(lock)) == []
        # a wrong password while ONLINE: refused as an unlock, not as an offline login
        lock.query_one("#lock-password").value = "nope"
        await pilot.press("enter")
        await wait_for(
            pilot, lambda: "wrong password" in str(lock.query_one("#lock-error").render()), what="the refusal"
        )
        said = str(lock.query_one("#lock-error").render())
        assert app.session.mode == "ONLINE" and "offline" not in said and said.startswith("unlock refused"), (
            said
        )
        lock.query_one("#lock-password").value = "demo"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is desk, what="unlocked")
        held = [str(n.message) for n in app._notifications]
        assert (
            f"Order rejected for {row['client_id']}" in held
            and f"Square-off: 2 legs for {row['client_id']}" in held
        )
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: CommandPalette.is_open(app), what="the palette once unlocked")
        await pilot.press("escape")
        app.exit()
