"""The dealer console against a real mainsim and a real store: login, orders, square-off,
cancel, the mode banner.  Pilot drives the real app; nothing is mocked but the keyring."""

from __future__ import annotations

import pytest

from tests.tui_env import SIZE, login, run, make_app, tui_keyring, wait_for  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(90)


def test_online_login_shows_the_desk(sim, tmp_path, tui_keyring):
    run(_online_login(sim, tmp_path))


async def _online_login(sim, tmp_path):
    from console.tui.widgets.banner import ModeBanner
    from console.tui.widgets.status_bar import StatusBar

    app = make_app(sim.url, tmp_path / "home")
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot)
        assert app.session.identity.how == "ONLINE"
        assert str(desk.query_one(ModeBanner).render()).startswith(" ONLINE")
        # the runtime's first snapshot lands in the grid
        pos = desk.grid("positions")
        await wait_for(pilot, lambda: pos.row_count > 0, what="positions")
        local = app.service.local_positions()
        assert pos.row_count == len(local)
        bar = desk.query_one(StatusBar)
        await wait_for(pilot, lambda: "dealer1 (dealer, online)" in bar.line(), what="status bar user")
        assert "main " in bar.line() and "journal 0" in bar.line()
        app.exit()
