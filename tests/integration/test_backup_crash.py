"""Crash and disk-fault safety of backup journal writes, with real CLI processes.

* kill -9 of a `lifeboat squareoff` in a loop (10 trials here, 100 behind
  ``-m soak``): every entry whose JSON answer was printed is in the journal, the
  audit chain verifies, and an entry committed but never acknowledged is listed
  as such by `status --json` after the crash.
* fsync/fdatasync failing with EIO (an injected fault through an LD_PRELOAD shim,
  tests/faultshim/syncfail.c, because a failing disk cannot be had here): the
  answer is "NOT accepted", exit 1, the JSON failure object on stdout (no leg), and the journal is the same
  afterwards, also after the store is reopened.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from tests import shims
from tests.backup_desk import build_template, fresh_console
from tests.cli_env import PASSWORD


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return build_template(tmp_path_factory.mktemp("crash-template"))


def journal_ids(cli) -> dict[str, str | None]:
    with sqlite3.connect(cli.store_file) as con:
        return {r[0]: r[1] for r in con.execute("SELECT client_order_id, acknowledged_at FROM journal")}


def a_client(cli) -> str:
    with sqlite3.connect(cli.store_file) as con:
        return con.execute(
            "SELECT p.client_id FROM positions p JOIN clients c ON c.client_id = p.client_id "
            "WHERE c.dealer_id='dealer1' AND p.net_quantity != 0 ORDER BY 1 LIMIT 1"
        ).fetchone()[0]


def squareoff_proc(cli, client, **env) -> subprocess.Popen:
    return cli.popen(
        "--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n", **env
    )


def _trials(cli, n: int, seed: int = 4) -> None:
    rng = random.Random(seed)
    client = a_client(cli)
    printed: set[str] = set()
    for _ in range(n):
        p = squareoff_proc(cli, client)
        time.sleep(rng.uniform(0.3, 2.5))
        p.send_signal(signal.SIGKILL)
        out, _ = p.communicate(timeout=30)
        if out.strip():
            printed |= {leg["client_order_id"] for leg in json.loads(out)["legs"]}
    journaled = journal_ids(cli)
    assert printed <= set(journaled), "an acknowledged (printed) entry is missing from the journal"
    assert cli("audit", "verify").returncode == 0
    st = cli("status", "--json").ok().json()
    assert st["journal"]["unacknowledged"] == sum(1 for v in journaled.values() if v is None)


def test_kill9_during_journal_writes_loses_no_acknowledged_entry(template, tmp_path):
    cli = fresh_console(template, tmp_path)
    client = a_client(cli)
    # one deterministic trial: killed after the answer is printed, before the acknowledgement
    p = squareoff_proc(cli, client, LIFEBOAT_TEST_ACK_PAUSE="30")
    line = p.stdout.readline()
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    legs = json.loads(line)["legs"]
    ids = journal_ids(cli)
    assert all(leg["client_order_id"] in ids and ids[leg["client_order_id"]] is None for leg in legs)
    st = cli("status", "--json").ok().json()
    listed = {e["client_order_id"] for e in st["journal"]["unacknowledged_entries"]}
    assert {leg["client_order_id"] for leg in legs} <= listed  # "committed, never acknowledged"
    rows = cli("journal", "--json").ok().json()
    assert {r["client_order_id"] for r in rows if not r["acknowledged"]} >= {
        leg["client_order_id"] for leg in legs
    }
    _trials(cli, 8)


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_kill9_loop_100_trials(template, tmp_path):
    _trials(fresh_console(template, tmp_path), 100, seed=11)


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> str:
    return shims.build(tmp_path_factory, "syncfail")


def test_fdatasync_failing_is_not_accepted_and_journal_unchanged(template, tmp_path, shim):
    # count the sync calls of one healthy run from the same starting state ...
    probe = fresh_console(template, tmp_path / "probe")
    log = tmp_path / "syncs.log"
    squareoff_proc(probe, a_client(probe), LD_PRELOAD=shim, FAULTSHIM_LOG=str(log)).communicate(timeout=60)
    assert journal_ids(probe)
    total = len(log.read_text().splitlines())
    assert total >= 1
    # ... then fail from the last one on: the journal commit's own sync
    cli = fresh_console(template, tmp_path / "real")
    before = journal_ids(cli)
    p = squareoff_proc(cli, a_client(cli), LD_PRELOAD=shim, FAULTSHIM_SKIP=str(total - 1))
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, (out, err)
    failure = json.loads(out)  # --json: the failure as one object, and nothing that reads as journaled
    assert failure["ok"] is False and failure["error"]["reason"] == "not_accepted", out
    assert "NOT accepted" in failure["error"]["message"] and "legs" not in failure
    assert "NOT accepted" in err and "Traceback" not in err
    assert journal_ids(cli) == before  # reopened by sqlite3 here: WAL recovery included
    assert cli("audit", "verify").returncode == 0
    assert journal_ids(cli) == before
