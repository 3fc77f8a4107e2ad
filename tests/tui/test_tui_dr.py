"""The console's screen with a DR site (issue 12): a real main and a real DR standby (mainsim
processes), a real store, the real app.  Main killed, the DR site promoted: the banner turns DR
(blue, naming the site), the status bar shows the DR site's role and epoch, and a square-off
from the desk is taken by the DR site itself (not journaled), once."""

from __future__ import annotations

import httpx

from tests.integration.test_mainsim_dr import caught_up, orders_in, standby_args, supervisor
from tests.mainsim_support import API
from tests.tui_env import SIZE, login, make_app, run, wait_for


def test_main_down_dr_promoted_the_desk_squares_off_at_dr(sim_factory, tmp_path, tui_keyring):
    main = sim_factory()
    dr = sim_factory(extra_args=standby_args(main.url))
    run(_story(main, dr, tmp_path))


async def _story(main, dr, tmp_path):
    from console.tui.screens.squareoff import SquareOffScreen
    from console.tui.widgets.banner import ModeBanner
    from console.tui.widgets.status_bar import StatusBar

    app = make_app(main.url, tmp_path / "home", dr_url=dr.url)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        banner, bar = desk.query_one(ModeBanner), desk.query_one(StatusBar)
        await wait_for(pilot, lambda: app.live.snapshot().connected, what="the stream")
        await wait_for(
            pilot, lambda: "DR standby e0" in str(bar.render()), what="the DR site on the status bar"
        )
        caught_up(dr, list(orders_in(main.db)))

        main.kill()
        await wait_for(pilot, lambda: banner.mode == "BACKUP", what="BACKUP on the banner")
        r = httpx.post(f"{dr.url}{API}/admin/promote", headers=supervisor(dr), timeout=10)
        assert r.status_code == 200, r.text
        await wait_for(pilot, lambda: banner.mode == "DR", timeout=20, what="DR on the banner")
        text = str(banner.render())
        assert banner.has_class("mode-dr") and "DR site" in text and dr.url in text, text
        await wait_for(
            pilot, lambda: "DR primary e1" in str(bar.render()), what="DR primary on the status bar"
        )

        pos = desk.grid("positions")
        open_key = next(k for k in pos.keys() if pos.row(k)["net_quantity"] != 0)  # noqa: SIM118 - a widget
        pos.move_to(open_key)
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        await wait_for(pilot, lambda: so.preview is not None, what="the preview")
        await pilot.press("y")
        await wait_for(pilot, lambda: so.result is not None, timeout=20, what="the square-off at DR")
        result = so.result
        assert result.mode == "DR" and not result.journal_seqs, (result.mode, result.journal_seqs)
        coids = [leg["client_order_id"] for leg in result.legs]
        assert coids and all(leg["outcome"] != "journaled" for leg in result.legs), result.legs
        on_dr = orders_in(dr.db)  # no client_order_id twice (asserted inside)
        assert set(coids) <= set(on_dr) and not set(coids) & set(orders_in(main.db))
        await pilot.press("escape")
        await wait_for(
            pilot, lambda: pos.row(open_key)["net_quantity"] == 0, timeout=20, what="flat on the desk"
        )
        app.exit()


def test_split_brain_turns_the_banner_to_an_alarm_and_the_desk_journals(sim_factory, tmp_path, tui_keyring):
    main, other = sim_factory(), sim_factory()  # both say primary: split brain
    run(_split(main, other, tmp_path))


async def _split(main, other, tmp_path):
    from console.tui.screens.squareoff import SquareOffScreen
    from console.tui.widgets.banner import ModeBanner
    from console.tui.widgets.status_bar import StatusBar

    before = set(orders_in(main.db)), set(orders_in(other.db))
    app = make_app(main.url, tmp_path / "home", dr_url=other.url)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        banner, bar = desk.query_one(ModeBanner), desk.query_one(StatusBar)
        await wait_for(pilot, lambda: banner.mode == "BACKUP", timeout=20, what="BACKUP on the banner")
        await wait_for(pilot, lambda: "ALARM" in str(banner.render()), what="the alarm on the banner")
        text = str(banner.render())
        assert "split brain" in text and "main is down" not in text, text
        await wait_for(pilot, lambda: "ALARM" in str(bar.render()), what="the alarm on the status bar")

        pos = desk.grid("positions")
        open_key = next(k for k in pos.keys() if pos.row(k)["net_quantity"] != 0)  # noqa: SIM118 - a widget
        pos.move_to(open_key)
        await pilot.press("f10")
        so = await wait_for(
            pilot, lambda: isinstance(app.screen, SquareOffScreen) and app.screen, what="square-off"
        )
        await wait_for(pilot, lambda: so.preview is not None, what="the preview")
        await pilot.press("y")
        await wait_for(pilot, lambda: so.result is not None, timeout=20, what="the journaled square-off")
        assert so.result.mode == "BACKUP" and so.result.journal_seqs
        assert (set(orders_in(main.db)), set(orders_in(other.db))) == before  # sent to neither site
        await pilot.press("escape")
        app.exit()
