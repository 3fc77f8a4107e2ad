"""`lifeboat status` and the console's status bar never promise what cannot happen.

Issue 9, section 3.  A real mainsim, the real CLI as a subprocess, a real store:
- with main down, BACKUP only where a backup action could be accepted (a user with a
  verifier and a grant valid by the clock, and a start-of-day book); else UNAVAILABLE,
  the reason, exit 5;
- no field is None/null where a word belongs (text and JSON);
- the status bar names the real login kind (offline in BACKUP).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.cli_env import DEAD_URL, PASSWORD
from tests.tui_env import SIZE, login, make_app, wait_for

pytestmark = pytest.mark.timeout(180)


def nulls(obj, path: str = "") -> list[str]:
    """Paths of every None in a JSON answer, but ``forced_mode`` (null: no supervisor forced one)."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() if f"{path}.{k}" != ".forced_mode" for p in nulls(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in nulls(v, f"{path}[{i}]")]
    return [path] if obj is None else []


def assert_words_not_nones(text: str) -> None:
    for bad in ("None", "null", "nan"):
        assert bad not in text.split() and f" {bad}," not in text and f"{bad})" not in text, text


# --------------------------------------------------------------------------- UNAVAILABLE


def test_status_on_a_console_that_cannot_trade_with_main_down_is_unavailable_exit_5(cli_factory):
    cli = cli_factory(DEAD_URL, user=None)  # never logged in online here, no BOD, no grant
    j, t = cli.many(("status", "--json"), ("status",))
    assert j.returncode == 5 and t.returncode == 5, (j.stdout, j.stderr, t.stdout, t.stderr)
    st = j.json()
    assert st["mode"] == "UNAVAILABLE" and "backup" not in st
    assert "main system unreachable" in st["reason"] and "backup not possible here" in st["reason"]
    assert "nobody has ever logged in online on this console" in st["reason"]
    assert "no start-of-day book" in st["reason"]
    assert nulls(st) == []
    first = t.stdout.splitlines()[0]
    assert first.startswith("mode           UNAVAILABLE: main system unreachable"), t.stdout
    assert_words_not_nones(t.stdout)
    assert "last BOD       never" in t.stdout and "mirror         never synced" in t.stdout


def test_backup_only_with_a_valid_grant_and_a_book_here(sim, cli_factory):
    cli = cli_factory(sim.url)
    cli.login().ok()  # online login: verifier and grant stored, but no BOD yet
    no_book = cli("--backend", DEAD_URL, "status", "--json")
    assert no_book.returncode == 5, no_book.stdout + no_book.stderr
    st = no_book.json()
    assert st["mode"] == "UNAVAILABLE" and st["reason"].endswith(
        "backup not possible here: no start-of-day book in the local store (`lifeboat sync bod` while main is up)"
    )

    cli.bod_in_process()
    backup, other, text = cli.many(
        ("--backend", DEAD_URL, "status", "--json"),
        ("--backend", DEAD_URL, "--user", "dealer2", "status", "--json"),
        ("--backend", DEAD_URL, "status"),
    )
    st = backup.ok().json()
    assert st["mode"] == "BACKUP" and "reason" not in st and nulls(st) == []
    [who] = st["backup"]["users"]
    assert who["user_id"] == "dealer1" and who["role"] == "dealer"
    assert text.ok().stdout.splitlines()[0] == "mode           BACKUP"
    assert f"offline login  dealer1 (dealer) until {who['grant_valid_until']}" in text.stdout
    assert_words_not_nones(text.stdout)

    # --user names someone with nothing here: that user could not act, whoever else could
    assert other.returncode == 5 and other.json()["mode"] == "UNAVAILABLE"
    assert "dealer2 has never logged in online on this console" in other.json()["reason"]

    # BACKUP told the truth: a backup action is accepted (journaled), exit 0
    so = (
        cli(
            "--backend",
            DEAD_URL,
            "--password-stdin",
            "squareoff",
            "--all",
            "--yes",
            "--json",
            stdin=PASSWORD + "\n",
        )
        .ok()
        .json()
    )
    assert so["mode"] == "BACKUP" and so["outcome"] == "journaled"


def test_a_grant_expired_by_the_clock_makes_status_unavailable_as_offline_login_refuses(sim, cli_factory):
    from console.service import Service
    from sync import offline

    cli = cli_factory(sim.url)
    cli.login().ok()
    cli.bod_in_process()
    svc = Service(backend_url=DEAD_URL, home=cli.home, user="dealer1")
    try:
        until = datetime.fromisoformat(asyncio.run(svc.status())["backup"]["users"][0]["grant_valid_until"])
        before, after = until - timedelta(minutes=1), until + timedelta(seconds=1)
        svc._mode = None
        assert asyncio.run(svc.status(now=before))["mode"] == "BACKUP"
        svc._mode = None
        st = asyncio.run(svc.status(now=after))
        assert st["mode"] == "UNAVAILABLE" and "expired" in st["reason"] and "backup" not in st
        assert st["reason"].endswith("(an online login renews it)")
        # the same check, the same instants, in offline login itself
        offline.login(svc.store, "dealer1", PASSWORD, now=before)
        with pytest.raises(offline.BackupImpossible, match="expired"):
            offline.login(svc.store, "dealer1", PASSWORD, now=after)
    finally:
        svc.close()


def test_a_viewer_with_a_valid_grant_does_not_make_backup_possible(sim, cli_factory):
    cli = cli_factory(sim.url, user="viewer1")
    cli.login().ok()
    cli.bod_in_process()
    r = cli("--backend", DEAD_URL, "status", "--json")
    assert r.returncode == 5 and r.json()["mode"] == "UNAVAILABLE"
    assert "viewer1 is a viewer and cannot trade" in r.json()["reason"]


# --------------------------------------------------------------------------- no None where a word belongs


def test_status_fields_are_words_not_nones_on_a_fresh_console_with_main_up(sim, cli_factory):
    cli = cli_factory(sim.url, user=None)
    j, t = cli.many(("status", "--json"), ("status",))
    st = j.ok().json()
    assert st["mode"] == "ONLINE" and st["forced_mode"] is None
    assert nulls(st) == [], nulls(st)
    # never happened: left out, not null (a fresh store's console_state says ONLINE with no time: not a record)
    assert not {"last_bod", "mirror", "recorded_mode", "mode_since", "reason"} & set(st)
    assert "updated_by" not in st["policy"] and "last_report_at" not in st["replay"]
    out = t.ok().stdout
    assert_words_not_nones(out)
    assert "mirror         never synced" in out and "last BOD       never" in out
    assert (
        "runtime mode   none recorded" in out
        and "policy         reduce-only, kill switch off (default)" in out
    )


def test_mode_since_agrees_with_the_mode_the_runtime_recorded(sim, cli_factory):
    from backend_client.detector import Mode, Transition
    from localstore.db import open_store
    from sync.detector_store import record_transition

    cli = cli_factory(sim.url)
    cli.login().ok()
    cli.bod_in_process()
    at = datetime(2026, 1, 5, 4, 1, 2, tzinfo=UTC)
    store = open_store(cli.store_file)
    try:
        record_transition(
            store, Transition(Mode.ONLINE, Mode.BACKUP, 0.0, "3 probes failed"), wall_at=at, user_id="dealer1"
        )
    finally:
        store.close()
    down, up = cli.many(("--backend", DEAD_URL, "status", "--json"), ("status", "--json"))
    st = down.ok().json()
    assert st["mode"] == "BACKUP" and st["recorded_mode"] == {
        "mode": "BACKUP",
        "reason": "3 probes failed",
        "since": at.isoformat(),
    }
    assert st["mode_since"] == at.isoformat() and nulls(st) == []
    st = up.ok().json()  # main answers: ONLINE now, the BACKUP record says nothing about since when
    assert st["mode"] == "ONLINE" and "mode_since" not in st and st["recorded_mode"]["mode"] == "BACKUP"
    assert nulls(st) == [] and st["mirror"]["last_event_seq"] is not None
    text = cli("--backend", DEAD_URL, "status").ok().stdout
    assert text.splitlines()[0] == f"mode           BACKUP since {at.isoformat()}"
    assert_words_not_nones(text)


# --------------------------------------------------------------------------- the status bar


def test_status_bar_names_the_real_login_kind(sim, tmp_path, tui_keyring):
    """Logged in online, then main goes down: every action is now an offline login, and
    the bar says so; logged in offline from the start: offline too."""
    home = tmp_path / "home"
    asyncio.run(_online_then_down(sim, home))
    asyncio.run(_offline_from_the_start(sim.url, home))


async def _bar(pilot, desk, mode: str) -> str:
    from console.tui.widgets.status_bar import StatusBar

    bar = desk.query_one(StatusBar)
    return await wait_for(
        pilot,
        lambda: bar.status.get("mode") == mode and "dealer1" in bar.line() and bar.line(),
        timeout=30,
        what=f"the status bar in {mode}",
    )


async def _online_then_down(sim, home):
    from console.tui.widgets.banner import ModeBanner

    app = make_app(sim.url, home)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot, expect="ONLINE")
        line = await _bar(pilot, desk, "ONLINE")
        assert "dealer1 (dealer, online)" in line, line
        sim.kill()  # the runtime's detector takes the console to BACKUP
        await wait_for(pilot, lambda: desk.query_one(ModeBanner).mode == "BACKUP", timeout=30, what="BACKUP")
        line = await _bar(pilot, desk, "BACKUP")
        assert "dealer1 (dealer, offline)" in line and "online)" not in line, line
        app.exit()


async def _offline_from_the_start(url, home):
    app = make_app(url, home)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot, expect="OFFLINE")
        assert app.session.identity.how == "OFFLINE"
        line = await _bar(pilot, desk, "BACKUP")
        assert "dealer1 (dealer, offline)" in line, line
        app.exit()


def test_the_console_banner_says_unavailable_not_backup_where_nothing_could_be_journaled(
    sim, tmp_path, tui_keyring
):
    """Logged in online, then the offline material is gone (the grant expired overnight, or as
    here removed from the store) and main goes down: the banner must not say BACKUP."""
    home = tmp_path / "home"
    asyncio.run(_online_then_down_without_a_grant(sim, home))


async def _online_then_down_without_a_grant(sim, home):
    import sqlite3

    from console.tui.widgets.banner import ModeBanner

    app = make_app(sim.url, home)
    async with app.run_test(size=SIZE) as pilot:
        desk = await login(pilot, expect="ONLINE")
        await _bar(pilot, desk, "ONLINE")
        with sqlite3.connect(home / "lifeboat.db") as db:
            db.execute("DELETE FROM offline_credentials")
        sim.kill()
        banner = desk.query_one(ModeBanner)
        await wait_for(
            pilot, lambda: banner.mode == "UNAVAILABLE", timeout=30, what="UNAVAILABLE on the banner"
        )
        text = str(banner.render())
        assert text.startswith(" UNAVAILABLE") and "dealer1 has never logged in online" in text, text
        assert desk.status["mode"] == "UNAVAILABLE"
        app.exit()
