"""The clock watermark that stops a clock set back from stretching an offline grant must
not be poisoned by a clock set forward.

Issue 10: one offline login at a clock 10 h ahead moved the watermark (it took the local
wall clock); back at the real time, offline login was refused until the real time passed
it.  Now only the main system's times move it (the grant's issued_at at online login, the
BOD, the mirror) plus the monotonic time since the online login on this boot
(localstore.credentials).  The clock is moved per process with LIFEBOAT_CLOCK_OFFSET_S,
the one clock every part reads (contract/clock.py).

Real parts: mainsim on loopback for the online logins and the BOD (once per module,
tests/backup_desk.py), then a copy of that console pointed at a dead port; the CLI as
subprocesses; a real SQLite store.  Only the keyring is the tests' file-backed one.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from contract import clock
from contract.clock import OFFSET_ENV
from tests.backup_desk import build_template, fresh_console
from tests.cli_env import PASSWORD, Cli
from tests.integration.test_login_throttle import a_client


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """dealer1 and super1 logged in online and a BOD taken, once per module (tests/backup_desk.py)."""
    return build_template(tmp_path_factory.mktemp("watermark-template"))


@pytest.fixture
def desk(template, tmp_path) -> Cli:
    """A copy of the template's console (enrolled, trust anchors copied) with main down."""
    return fresh_console(template, tmp_path)


def offline_login(down, shift: timedelta):
    """A backup-mode dry-run square-off with the clock moved by ``shift``."""
    offset = float(os.environ[OFFSET_ENV]) + shift.total_seconds()
    return down(
        "--password-stdin",
        "squareoff",
        "--client",
        a_client(down),
        "--dry-run",
        "--yes",
        "--json",
        stdin=PASSWORD + "\n",
        **{OFFSET_ENV: repr(offset)},
    )


def grant_valid_until(down) -> datetime:
    with sqlite3.connect(down.store_file) as con:
        text = con.execute(
            "SELECT valid_until FROM offline_credentials WHERE user_id = 'dealer1'"
        ).fetchone()[0]
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_clock_set_forward_does_not_lock_out_offline_login_later(desk):
    down = desk
    # 10 h ahead, or as far as the grant stays valid (LIFEBOAT_TEST_NOW may put the suite late in the day)
    ahead = min(timedelta(hours=10), grant_valid_until(down) - clock.utcnow() - timedelta(minutes=5))
    assert ahead > timedelta(hours=1)
    offline_login(down, ahead).ok()
    offline_login(down, timedelta(0)).ok()  # back at the real time: still allowed
    with sqlite3.connect(down.store_file) as con:
        stored = con.execute("SELECT clock_watermark FROM sync_state").fetchone()[0]
    assert datetime.fromisoformat(stored).replace(tzinfo=UTC) < clock.utcnow() + timedelta(minutes=1)


def test_a_clock_set_back_is_still_refused(desk):
    down = desk
    r = offline_login(down, -timedelta(hours=1))
    assert r.returncode == 5 and "clock" in r.json()["error"]["message"], (r.stdout, r.stderr)
    offline_login(down, timedelta(0)).ok()


def test_after_a_reboot_only_mains_stored_times_count(tmp_path):
    """The monotonic part holds only on the boot it was taken on (another boot id: ignored)."""
    from localstore import credentials
    from localstore.anchors import Anchors
    from localstore.db import open_store

    anchors = Anchors(tmp_path / "home", backend="file")
    t0 = clock.utcnow()
    anchors.put(clock_epoch=credentials.epoch_anchor(t0 - timedelta(hours=2)))
    store = open_store(tmp_path / "lifeboat.db")
    try:
        with store.write_core() as conn:
            credentials.observe_server_time(conn, t0 - timedelta(hours=3))
        with store.read_core() as conn:
            # this boot: main's time two hours ago plus the time since boot's count... minus nothing: now-2h+
            assert credentials.watermark(conn, Anchors(tmp_path / "home", backend="file")) >= t0 - timedelta(
                hours=2
            )
        anchors.put(clock_epoch={**anchors.get("clock_epoch"), "boot_id": "another-boot"})
        with store.read_core() as conn:
            assert credentials.watermark(conn, Anchors(tmp_path / "home", backend="file")) == t0 - timedelta(
                hours=3
            )
            assert credentials.clock_rolled_back(conn, t0 - timedelta(hours=4), anchors)
    finally:
        store.close()
