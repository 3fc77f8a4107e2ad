"""Snapshots (pytest-textual-snapshot) of every console screen, against a real mainsim.

Deterministic by construction: mainsim with no background orders and a tick interval of
an hour (prices stay at the seeded values), a frozen clock for the app, cursor blink off,
the status bar pinned to a fixed sample (its live figures - latency, ages, the BOD time -
change every run), and no toast left on screen.  The BACKUP desk is drawn by posting the
runtime's ModeChanged message to the app rather than staging an outage (the runtime is not
started here, so nothing moves); the live switch is covered by tests/tui/test_demo_tmux.py and
tests/tui/test_demo_drill.py.  The reconciliation screen is drawn from a fixed report dict of
the shape sync/reconcile.py stores (a live one carries this run's ids and timestamps).

Regenerate after a deliberate change: pytest tests/tui/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from contract.clock import OFFSET_ENV
from tests import testclock
from tests.cli_env import PASSWORD
from tests.simproc import SimProcess
from tests.tui_env import login, make_app, wait_for

pytestmark = pytest.mark.timeout(120)

SIZE = (160, 45)
FROZEN = datetime(2026, 1, 5, 9, 41, 7, tzinfo=UTC)
STATUS_ONLINE = {
    "mode": "ONLINE",
    "journal_depth": 0,
    "replay": "idle",
    "probe": {"ok": True, "latency_ms": 3.0, "kind": "ok"},
    "mirror": {"current_at": "2026-01-05T09:41:05+00:00"},
    "last_bod": {"at": "2026-01-05T09:15:00+00:00", "trading_date": "2026-01-05"},
    "user": {"user_id": "dealer1", "role": "dealer", "how": "ONLINE"},
}
STATUS_BACKUP = {
    **STATUS_ONLINE,
    "mode": "BACKUP",
    "journal_depth": 3,
    "probe": {"ok": False, "latency_ms": None, "kind": "refused"},
}
REPORT = {
    "id": 1,
    "created_at": "2026-01-05T09:44:12+00:00",
    "user": "dealer1",
    "trading_date": "2026-01-05",
    "replay": {"status": "done", "message": "replay done: 3 entries processed"},
    "counts": {"applied": 2, "moot": 1, "rejected": 0, "conflict": 0, "held": 0, "pending": 0, "sent": 0},
    "for_a_person": 0,
    "entries": [
        {
            "seq": 1,
            "kind": "SQUARE_OFF",
            "client_id": "C1001",
            "symbol": "ICICIBANK",
            "product": "CNC",
            "client_order_id": "DEMO01-260105-000001",
            "state": "applied",
            "main_order_id": "O000000061",
            "reason": "sold 43 to flatten",
        },
        {
            "seq": 2,
            "kind": "SQUARE_OFF",
            "client_id": "C1001",
            "symbol": "KOTAKBANK",
            "product": "MIS",
            "client_order_id": "DEMO01-260105-000002",
            "state": "applied",
            "main_order_id": "O000000062",
            "reason": "bought 42 to flatten",
        },
        {
            "seq": 3,
            "kind": "CANCEL",
            "client_id": "C1001",
            "symbol": "ITC",
            "product": "CNC",
            "client_order_id": "DEMO01-260105-000003",
            "state": "moot",
            "main_order_id": None,
            "reason": "order already filled on main",
        },
    ],
    "mismatches": [],
    "mismatch_counts": {"journal_vs_main": 0, "moved_on_main": 0, "mirror": 0},
    "local_equals_main": True,
}


@pytest.fixture(scope="module")
def still_sim(tmp_path_factory):
    """mainsim whose prices do not move during the module: no activity, one tick an hour.

    Its world (and the console's, in this process) is pinned to FROZEN's day through the one
    clock, whatever LIFEBOAT_TEST_NOW says: the screens show contract months and dates."""
    mp = pytest.MonkeyPatch()
    mp.setenv(OFFSET_ENV, testclock.offset_to(FROZEN))
    work = tmp_path_factory.mktemp("snapsim")
    sim = SimProcess(
        db=work / "mainsim.db",
        workdir=work,
        extra_args=["--tick-ms", "3600000", "--activity", "0", "--trading-date", FROZEN.date().isoformat()],
    )
    try:
        sim.start()
        yield sim
    finally:
        sim.stop()
        mp.undo()


@pytest.fixture
def console(still_sim, tmp_path, tui_keyring):
    """A console app on a fresh store with the BOD already taken (login screen first)."""
    from console.service import Service

    home = tmp_path / "home"
    svc = Service(backend_url=still_sim.url, home=home, user="dealer1")

    async def prepare():
        await svc.login("dealer1", PASSWORD)
        await svc.sync_bod()

    asyncio.run(prepare())
    svc.close()
    app = make_app(still_sim.url, home, start_runtime=False, status_every=3600, clock=lambda: FROZEN)
    yield app
    app.service.close()


def still(app) -> None:
    """No blinking cursor, no toast."""
    from textual.widgets import Input

    for screen in app.screen_stack:
        for inp in screen.query(Input):
            inp.cursor_blink = False
    app.clear_notifications()


async def desk_ready(pilot, status=STATUS_ONLINE):
    from console.tui.widgets.status_bar import StatusBar

    desk = await login(pilot)
    await wait_for(pilot, lambda: desk.status, what="the first status sample")
    await wait_for(pilot, lambda: desk.grid("positions").row_count > 0, what="positions")
    desk.action_show("positions")  # the panel title with the loaded row count
    desk.query_one(StatusBar).show(dict(status), mode_since=FROZEN.replace(minute=15, second=0))
    await pilot.pause()
    return desk


def test_login_screen(console, snap_compare):
    from console.tui.messages import LoginProbed
    from console.tui.screens.login import LoginScreen

    async def run_before(pilot):
        app = pilot.app
        screen = await wait_for(
            pilot, lambda: isinstance(app.screen, LoginScreen) and app.screen, what="login"
        )
        await wait_for(pilot, lambda: screen.online is not None, what="the login probe")
        screen.post_message(LoginProbed(True, "", 2.0))  # pin the measured latency
        await pilot.pause()
        for t in list(screen._timers):  # no re-probe while the picture is taken
            t.stop()
        still(app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_desk_online(console, snap_compare):
    async def run_before(pilot):
        await desk_ready(pilot)
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_desk_backup(console, snap_compare):
    from console.tui.messages import ModeChanged
    from console.tui.widgets.status_bar import StatusBar

    async def run_before(pilot):
        desk = await desk_ready(pilot)
        before = desk.status
        pilot.app.post_message(ModeChanged("BACKUP", "SUSPECT", "probe refused: connection refused", FROZEN))
        await wait_for(pilot, lambda: pilot.app.session.mode == "BACKUP", what="BACKUP")
        await wait_for(pilot, lambda: desk.status is not before, what="the status sample BACKUP asks for")
        desk.query_one(StatusBar).show(dict(STATUS_BACKUP), mode_since=FROZEN.replace(second=2))
        await pilot.pause()
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_order_entry(console, snap_compare):
    from console.tui.screens.order_entry import OrderEntryScreen

    async def run_before(pilot):
        await desk_ready(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OrderEntryScreen), what="order entry")
        await pilot.pause()
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_squareoff_preview(console, snap_compare):
    from console.tui.screens.squareoff import SquareOffScreen

    async def run_before(pilot):
        await desk_ready(pilot)
        await pilot.press("f10")
        screen = await wait_for(
            pilot,
            lambda: isinstance(pilot.app.screen, SquareOffScreen) and pilot.app.screen,
            what="square-off",
        )
        await wait_for(pilot, lambda: screen.preview is not None, what="the preview legs")
        await pilot.pause(0.3)
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_help(console, snap_compare):
    from console.tui.screens.help import HelpScreen

    async def run_before(pilot):
        await desk_ready(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), what="help")
        await pilot.pause()
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_lock(console, snap_compare):
    from console.tui.screens.lock import LockScreen

    async def run_before(pilot):
        await desk_ready(pilot)
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, LockScreen), what="lock")
        await pilot.pause()
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


def test_reconciliation_report(console, snap_compare):
    from console.tui.screens.reconciliation import ReconciliationScreen

    async def run_before(pilot):
        await desk_ready(pilot)
        await pilot.app.push_screen(
            ReconciliationScreen(
                REPORT,
                timings={
                    "detection_s": 0.64,
                    "squareoff_journal_s": 0.91,
                    "replay_s": 0.42,
                    "reconciliation_s": 0.21,
                },
                verdict="DRILL PASSED: the book ended flat and reconciled",
            )
        )
        await pilot.pause()
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)


HELD = [
    {
        "seq": 4,
        "kind": "SQUARE_OFF",
        "client_order_id": "DEMO01-260105-000004",
        "client_id": "C1002",
        "exchange": "NSE",
        "symbol": "INFY",
        "product": "MIS",
        "state": "held",
        "reason": "stale after 30 min: journaled 2026-01-05T09:02:11+00:00",
        "user_id": "dealer1",
        "created_at": "2026-01-05T09:02:11+00:00",
        "trading_date": "2026-01-05",
        "payload": {},
    },
    {
        "seq": 5,
        "kind": "SQUARE_OFF",
        "client_order_id": "DEMO01-260105-000005",
        "client_id": "C1002",
        "exchange": "NSE",
        "symbol": "TCS",
        "product": "CNC",
        "state": "conflict",
        "reason": "position flipped on main: was long 40, now short 10",
        "user_id": "dealer1",
        "created_at": "2026-01-05T09:31:40+00:00",
        "trading_date": "2026-01-05",
        "payload": {},
    },
]
REPORT_HELD = {
    **REPORT,
    "id": 2,
    "created_at": "2026-01-05T09:45:30+00:00",
    "replay": {"status": "done", "message": "replay done: 3 entries processed, 2 held for a person"},
    "counts": {**REPORT["counts"], "held": 1, "conflict": 1},
    "for_a_person": 2,
    "entries": [
        *REPORT["entries"][:1],
        {**HELD[0], "main_order_id": None},
        {**HELD[1], "main_order_id": None},
    ],
}


def test_replay_screen(console, snap_compare):
    """Ctrl+R as a dealer: the last report, two entries held for a person, the read-only note.
    The live data (this run's ids and times) is replaced by a fixed report and held list."""
    from console.tui.messages import HeldLoaded
    from console.tui.screens.replay import ReplayScreen

    async def run_before(pilot):
        await desk_ready(pilot)
        await pilot.press("ctrl+r")
        screen = await wait_for(
            pilot,
            lambda: isinstance(pilot.app.screen, ReplayScreen) and pilot.app.screen,
            what="the replay screen",
        )
        await wait_for(pilot, lambda: screen.loaded >= 1, what="the live load")
        screen.post_message(HeldLoaded(REPORT_HELD, HELD))
        await wait_for(pilot, lambda: screen.loaded >= 2, what="the fixed report")
        await pilot.pause()
        still(pilot.app)

    assert snap_compare(console, terminal_size=SIZE, run_before=run_before)
