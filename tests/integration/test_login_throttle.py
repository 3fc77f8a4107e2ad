"""Offline login's throttle and lockout, through the real CLI as separate processes.

Issue 10 found that ten parallel wrong passwords after a reset got 9-10 real password
checks (the delay was checked before the scrypt work and the failure recorded after
it), and that deleting the store's `login_throttle` row reset the count (that table is
gone now: localstore revision 0005).  Now each
attempt is reserved before the password work, under a lock, and counted in the trust
anchors outside the store (localstore.credentials); three attempts in a row without
the right password lock the user offline until an online login of that user or a
supervisor's `lifeboat user release`.

Real parts: mainsim on loopback for the online logins and the BOD (once per module,
tests/backup_desk.py; each test gets a copy of that console), then the console pointed
at a port nothing listens on (main down); a real SQLite store; the CLI as subprocesses.  Only the keyring is the tests' file-backed one (tests/keyring_backend.py).
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from tests.backup_desk import build_template, fresh_console
from tests.cli_env import PASSWORD, Cli

WRONG = "not-the-password"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """dealer1 and super1 logged in online and a BOD taken, once per module (tests/backup_desk.py)."""
    return build_template(tmp_path_factory.mktemp("throttle-template"))


@pytest.fixture
def desk(template, tmp_path) -> Cli:
    """A copy of the template's console (enrolled, trust anchors copied) with main down."""
    return fresh_console(template, tmp_path)


def a_client(cli: Cli) -> str:
    with sqlite3.connect(cli.store_file) as con:
        return con.execute(
            "SELECT client_id FROM clients WHERE dealer_id = 'dealer1' ORDER BY client_id"
        ).fetchone()[0]


def attempt(down: Cli, password: str, *extra: str, **env: str):
    """One offline login, as a backup-mode dry-run square-off (nothing is journaled)."""
    return down(
        *extra,
        "--password-stdin",
        "squareoff",
        "--client",
        a_client(down),
        "--dry-run",
        "--yes",
        "--json",
        stdin=password + "\n",
        **env,
    )


def audit_rows(cli: Cli, action: str) -> list[dict]:
    with sqlite3.connect(cli.store_file) as con:
        return [
            json.loads(p)
            for (p,) in con.execute("SELECT payload FROM audit_log WHERE action = ? ORDER BY id", (action,))
        ]


def wrong_password_checks(cli: Cli) -> int:
    return sum(1 for p in audit_rows(cli, "login_failed") if p.get("reason") == "wrong_password")


def error_of(r) -> dict:
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    return r.json()["error"]


def strike_out(down: Cli, strikes: int = 3) -> None:
    """``strikes`` wrong passwords in a row, each after the delay the one before set."""
    for i in range(strikes):
        if i >= 2:
            time.sleep(2 ** (i - 2) + 0.1)  # the delay after i attempts: 1, 2 ... s
        error_of(attempt(down, WRONG))


def test_parallel_wrong_passwords_get_only_the_allowed_checks(desk):
    down = desk
    procs = [
        down.popen(
            "--password-stdin",
            "squareoff",
            "--client",
            a_client(down),
            "--dry-run",
            "--yes",
            stdin=WRONG + "\n",
        )
        for _ in range(10)
    ]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close(), p.stderr.close()
    assert all(code == 3 for code, _ in results), results
    checked = [err for _, err in results if "wrong password" in err]
    refused = [err for _, err in results if "try again in" in err or "is locked" in err]
    # attempts 1 and 2 are allowed at once (delays 0, 0); a third only a second after the second, and
    # it locks dealer1: two real checks, three if the processes were spread over more than a second
    assert 2 <= len(checked) <= 3, results
    assert len(checked) + len(refused) == 10, results
    assert wrong_password_checks(down) == len(checked)  # each check counted exactly once


def test_deleting_or_editing_the_throttle_row_does_not_reset_it(desk):
    down = desk
    strike_out(down)
    with sqlite3.connect(down.store_file) as con:  # everything the store holds about the failures, gone
        tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "login_throttle" in tables:  # where the count was kept before (the table is dropped now, rev 0005)
            con.execute("UPDATE login_throttle SET failures = 0, next_allowed_at = NULL")
            con.execute("DELETE FROM login_throttle")
        con.execute("DELETE FROM audit_log WHERE action IN ('login_failed', 'user_locked')")
    e = error_of(attempt(down, PASSWORD))
    assert e["reason"] == "locked" and "is locked" in e["message"], e


def test_three_wrong_passwords_lock_the_user_until_released(desk):
    down = desk
    e1, e2 = error_of(attempt(down, WRONG)), error_of(attempt(down, WRONG))
    assert (
        "2 more wrong passwords lock it" in e1["message"]
        and "1 more wrong password locks it" in e2["message"]
    )
    time.sleep(1.1)
    e3 = error_of(attempt(down, WRONG))
    assert e3["reason"] == "locked" and "now locked" in e3["message"], e3
    e4 = error_of(attempt(down, PASSWORD))  # the right password no longer helps
    assert e4["reason"] == "locked"
    assert "lifeboat user release dealer1" in e4["message"] and "online login" in e4["message"], e4
    assert [p["failures"] for p in audit_rows(down, "user_locked")] == [3]
    st = down("status", "--json")  # status does not promise a backup dealer1 cannot log in for
    assert st.returncode == 5 and "dealer1 is locked for offline login" in st.stdout, (st.stdout, st.stderr)
    assert [p["reason"] for p in audit_rows(down, "login_failed")][-1] == "locked"


def test_an_online_login_releases_the_lock(desk, sim):
    down = desk
    up = Cli(
        home=down.home, backend_url=sim.url, keyring_file=down.keyring_file, user="dealer1"
    )  # main is back
    strike_out(down)
    assert error_of(attempt(down, PASSWORD))["reason"] == "locked"
    up.login("dealer1").ok()
    attempt(down, PASSWORD).ok()
    assert audit_rows(down, "user_released")[-1] == {
        "user": "dealer1",
        "by": "online login",
        "failures": 3,
        "was_locked": True,
    }


def test_a_supervisor_releases_the_lock_offline(desk):
    down = desk
    strike_out(down)
    r = down(
        "--user", "dealer1", "--password-stdin", "user", "release", "dealer1", "--json", stdin=PASSWORD + "\n"
    )
    assert r.returncode == 3 and "supervisor" in r.stderr, (r.stdout, r.stderr)  # not a dealer's to lift
    r = (
        down(
            "--user",
            "super1",
            "--password-stdin",
            "user",
            "release",
            "dealer1",
            "--json",
            stdin=PASSWORD + "\n",
        )
        .ok()
        .json()
    )
    assert r == {
        "user": "dealer1",
        "released_by": "super1",
        "was_locked": True,
        "failures": 3,
        "lock_after": 3,
    }
    attempt(down, PASSWORD).ok()
    assert audit_rows(down, "user_released")[-1]["by"] == "super1"


def test_the_lockout_count_is_configurable(desk):
    down = desk
    sup = ("--user", "super1", "--password-stdin")
    assert down("user", "lockout", "--json").ok().json() == {"lock_after": 3}
    assert down(*sup, "user", "lockout", "2", "--json", stdin=PASSWORD + "\n").ok().json()["lock_after"] == 2
    procs = [
        down.popen(
            "--password-stdin",
            "squareoff",
            "--client",
            a_client(down),
            "--dry-run",
            "--yes",
            stdin=WRONG + "\n",
        )
        for _ in range(4)
    ]
    errs = [p.communicate(timeout=60)[1] for p in procs]
    assert sum("wrong password" in e for e in errs) == 2, errs  # exactly two real checks, whatever the timing
    assert sum("is locked" in e or "try again in" in e for e in errs) == 2, errs

    down(*sup, "user", "release", "dealer1", stdin=PASSWORD + "\n").ok()
    down(*sup, "user", "lockout", "0", stdin=PASSWORD + "\n").ok()  # off: the growing delay only
    strike_out(down, 2)
    time.sleep(1.1)
    e = error_of(attempt(down, WRONG))  # a third wrong password no longer locks: it sets a delay of 2 s
    assert e["reason"] != "locked" and "next attempt allowed in 2 s" in e["message"], e
    time.sleep(2.1)
    attempt(down, PASSWORD).ok()  # and the right one, after the delay, is let in
    assert audit_rows(down, "lockout_change")[-1] == {"lock_after": 0, "before": 2}
