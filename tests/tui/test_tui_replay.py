"""The replay and reconciliation screen (Ctrl+R) against a real mainsim and a real store:
a journal entry held for a person (stale: journaled more than the policy window ago, the
same ageing tests/integration/test_replay_faults.py uses), seen read only by a dealer who cannot
release it, released by super1 after a confirmation (the audit row is there), then
replayed to main with "replay now".  Nothing is mocked but the keyring."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.tui_env import SIZE, login, make_app, run, wait_for

pytestmark = pytest.mark.timeout(90)


def _held_scene(url: str, home) -> tuple[int, tuple]:
    """dealer1 and super1 logged in online on this console; one square-off journaled in
    backup and aged past the stale window; a replay holds it.  Returns (seq, position key)."""
    from console.service import Service

    sup = Service(backend_url=url, home=home, user="super1")
    try:
        run(sup.login("super1", "demo"))  # super1's offline grant on this console
    finally:
        sup.close()
    svc = Service(backend_url=url, home=home, user="dealer1")
    try:
        run(svc.login("dealer1", "demo"))
        run(svc.sync_bod())
        p = next(p for p in svc.local_positions() if p.net_quantity)
        svc.use_mode("BACKUP")  # route as the runtime would in an outage: journaled, not sent
        res = run(svc.squareoff(client_id=p.client_id, symbol=p.symbol, password="demo"))
        assert res.mode == "BACKUP" and res.journal_seqs
        seq = next(
            e["seq"] for e in svc.journal_entries() if e["kind"] == "SQUARE_OFF" and e["symbol"] == p.symbol
        )
        with sqlite3.connect(home / "lifeboat.db") as db:  # journaled 31 minutes ago: stale (policy: 30)
            db.execute(
                "UPDATE journal SET created_at = datetime(created_at, '-31 minutes') WHERE seq = ?", (seq,)
            )
        svc.use_mode(None)
        out = run(svc.replay())
        assert out["report"]["for_a_person"] >= 1, out
        assert [h["seq"] for h in svc.held_entries()] == [seq]
        return seq, (p.client_id, p.exchange.value, p.symbol, p.product.value)
    finally:
        svc.close()


def _audit(home, action: str) -> list[tuple[str, dict]]:
    with sqlite3.connect(home / "lifeboat.db") as db:
        return [
            (u, json.loads(p))
            for u, p in db.execute(
                "SELECT user_id, payload FROM audit_log WHERE action = ? ORDER BY id", (action,)
            )
        ]


def test_held_entry_read_only_for_a_dealer_released_by_a_supervisor_then_replayed(sim, tmp_path, tui_keyring):
    from console.service import Denied, Service

    home = tmp_path / "home"
    seq, key = _held_scene(sim.url, home)
    run(_dealer_sees_it_read_only(sim.url, home, seq))
    dealer = Service(backend_url=sim.url, home=home, user="dealer1")
    try:  # nor through the service with the right password: a supervisor's decision
        with pytest.raises(Denied, match="supervisor"):
            run(dealer.release_held(seq, password="demo"))
    finally:
        dealer.close()
    assert _audit(home, "replay_release") == []
    run(_supervisor_releases_and_replays(sim.url, home, seq, key))


async def _open_replay(pilot):
    from console.tui.screens.replay import ReplayScreen

    app = pilot.app
    await pilot.press("ctrl+r")
    screen = await wait_for(
        pilot, lambda: isinstance(app.screen, ReplayScreen) and app.screen, what="replay screen"
    )
    await wait_for(pilot, lambda: screen.loaded >= 1, what="the report and held entries")
    return screen


async def _dealer_sees_it_read_only(url, home, seq):
    from textual.widgets import Button, DataTable

    from console.tui.screens.confirm import ConfirmScreen

    app = make_app(url, home, start_runtime=False)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot)
        screen = await _open_replay(pilot)
        held = screen.query_one("#replay-held", DataTable)
        assert held.row_count == 1 and [h["seq"] for h in screen.held] == [seq]
        assert "stale" in (screen.held[0]["reason"] or "")
        assert "held for a supervisor" in str(screen.query_one("#replay-headline").render())
        assert "Read only" in str(screen.query_one("#replay-note").render())
        assert screen.query_one("#replay-release", Button).disabled
        await pilot.press("r")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Only a supervisor" in str(screen.query_one("#replay-status").render())
        assert screen.last_decision is None
        app.exit()


async def _supervisor_releases_and_replays(url, home, seq, key):
    from textual.widgets import DataTable

    from console.service import Service
    from console.tui.screens.confirm import ConfirmScreen

    app = make_app(url, home, user="super1", start_runtime=False)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot)
        assert app.session.is_supervisor
        screen = await _open_replay(pilot)
        held = screen.query_one("#replay-held", DataTable)
        assert held.row_count == 1
        # discard asked, then refused at the confirmation: nothing happens
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="discard confirmation")
        assert "DISCARD" in str(app.screen.query_one("#confirm-question").render())
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen, what="back on the replay screen")
        assert screen.last_decision is None
        # release, confirmed
        await pilot.press("r")
        confirm = await wait_for(
            pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen, what="release confirmation"
        )
        assert f"#{seq}" in str(confirm.query_one("#confirm-question").render())
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.last_decision is not None, what="the release")
        assert screen.last_decision.error is None and screen.last_decision.release
        await wait_for(pilot, lambda: held.row_count == 0, what="the held list emptied")
        rows = _audit(home, "replay_release")
        assert len(rows) == 1 and rows[0][0] == "super1" and rows[0][1]["seq"] == seq
        assert _audit(home, "replay_discard") == []
        # the banner's replay progress: done / (done + what the journal still has to send).  A
        # stand-in for the runtime's recovery, because a live pass of one entry is over in
        # milliseconds; the backlog (the released entry, pending again) is read from the real store.
        from dataclasses import replace

        from console.live import LiveSnapshot
        from console.tui.messages import ModeChanged, ReplayProgress
        from console.tui.widgets.banner import ModeBanner

        running = LiveSnapshot(hosted=True, running=True, replaying=True, replay_done=2, replay_seen=2)
        assert app.session.replay_progress(running) == "2/3"
        running = replace(running, replaying=False)
        assert app.session.replay_progress(running) is None
        desk = app.desk
        poll = next(t for t in desk._timers if t.name == "desk-replay-progress")
        poll.pause()  # no runtime here: the desk's own look would clear the figure at once
        desk.set_mode(ModeChanged("RECOVERING", "BACKUP", "main answers again", app.clock()))
        desk.post_message(ReplayProgress("2/3"))
        banner = desk.query_one(ModeBanner)
        await wait_for(pilot, lambda: "replay 2/3" in str(banner.render()), what="progress on the banner")
        desk.post_message(ReplayProgress(None))
        await wait_for(
            pilot,
            lambda: banner.progress == "" and "2/3" not in str(banner.render()),
            what="progress cleared",
        )
        desk.set_mode(ModeChanged("ONLINE", "RECOVERING", "replay done", app.clock()))
        poll.resume()
        # replay now: the released square-off reaches main and the report says so
        loaded = screen.loaded
        await pilot.press("n")
        await wait_for(
            pilot, lambda: screen.last_replay is not None and screen.loaded > loaded, what="the replay"
        )
        assert screen.last_replay.error is None, screen.last_replay.error
        assert screen.last_replay.outcome["replay"]["status"] == "done"
        assert screen.report["for_a_person"] == 0
        entry = next(e for e in screen.report["entries"] if e["seq"] == seq)
        assert entry["state"] == "applied", entry
        app.exit()
    svc = Service(backend_url=url, home=home, user="dealer1")
    try:
        main = {
            (p.client_id, p.exchange.value, p.symbol, p.product.value): p.net_quantity
            for p in await svc.positions(key[0])
        }
    finally:
        svc.close()
    assert main[key] == 0
