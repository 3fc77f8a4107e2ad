"""A full disk is not a corrupt store (issue 10, section 3).

At 0 bytes free every command used to call a store holding unreplayed journal
entries "corrupt" and advise moving it aside and building a fresh one, which during
an outage orphans the journal.  Here a console journals a square-off in backup mode
(real mainsim, real CLI subprocesses, real SQLite file), then its disk fills up:

* on a real full filesystem, a small tmpfs (needs root, as CI has; skipped
  otherwise): `status`, `order place` in backup, `sync replay` and `audit verify`
  say the disk is full, how much is free and needed, how many journal entries the
  store holds, and not to move it; none says corrupt or "move it aside"; exit 1
  with the reason disk_full (not 8: nothing is known to be wrong with the store);
  the store file is untouched; once space is freed it is intact and the entries
  replay to main;
* while another process holds the store open (an agent), so the WAL index exists
  and the failure comes on the write: "NOT accepted", the same figures, journal
  unchanged;
* without root, the same full disk injected by an LD_PRELOAD shim
  (tests/faultshim/diskfull.c: writes under the home fail with ENOSPC) -- a fake
  because a filesystem cannot be filled without root here;
* an I/O error (every fsync fails with EIO, tests/faultshim/syncfail.c) with the
  disk far from full is told apart from both: "reported an I/O error", not full,
  not corrupt, the journal counted and kept;
* a store that really is corrupt but whose journal still reads exits 8, and one
  written by a newer Lifeboat is refused: neither is advised to be moved aside while
  it holds entries main has not seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests import shims
from tests.cli_env import DEAD_URL, PASSWORD, Cli

BAD_ADVICE = ("corrupt", "move it aside", "sync bod", "Traceback", "Logging error")


# --------------------------------------------------------------------------- the scene


def _unmount(mnt: Path) -> None:
    """A process that just exited may still hold the mount for a moment: retry, then detach."""
    for _ in range(50):
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 16 MiB tmpfs: room for the store and what it needs (about 4.3 MiB), then filled."""
    if os.geteuid() != 0:
        pytest.skip("filling a real filesystem needs a small tmpfs, and mounting one needs root")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        _unmount(mnt)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory`` until its filesystem has no byte left; the file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    chunk = 1 << 20
    try:
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError:
                chunk //= 2
    finally:
        os.close(fd)
    assert shutil.disk_usage(directory).free == 0
    return filler


def backup_console(up: Cli) -> tuple[Cli, list[tuple]]:
    """dealer1 logs in online and takes the BOD through ``up``; then, with main down, squares
    off its client with the most positions.  Returns the console pointed at the dead main
    and its journal entries (seq, client_order_id, state), all waiting for main."""
    up("--password-stdin", "sync", "bod", stdin=PASSWORD + "\n").ok()  # an online login (grant, verifier) too
    con = sqlite3.connect(up.store_file)
    try:
        client = con.execute(
            "SELECT p.client_id FROM positions p JOIN clients c ON c.client_id = p.client_id "
            "WHERE c.dealer_id = 'dealer1' AND p.net_quantity != 0 "
            "GROUP BY p.client_id ORDER BY count(*) DESC, p.client_id LIMIT 1"
        ).fetchone()[0]
    finally:
        con.close()  # a connection left open would keep the WAL index: not the closed store under test
    down = dataclasses.replace(up, backend_url=DEAD_URL)
    so = down(
        "--password-stdin", "squareoff", "--client", client, "--yes", "--json", stdin=PASSWORD + "\n"
    ).ok()
    legs = so.json()["legs"]
    assert len(legs) >= 2 and all(leg["outcome"] == "journaled" for leg in legs), so.stdout
    entries = journal_states(down.store_file)  # the legs, and the cancels of the client's open orders
    assert len(entries) >= len(legs) and all(state == "pending" for *_, state in entries), entries
    return down, entries


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_disk_full(r, entries: int, *words: str) -> None:
    """Exit 1 (not 8), the disk named full with figures, the journal entries counted,
    and no advice that would orphan them."""
    text = r.stderr
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    for word in (
        "disk holding the local store",
        "free there",
        "needed",
        f"{entries} journal entries",
        "not yet replayed to main",
        "do not move or delete it",
        *words,
    ):
        assert word in text, (word, text)
    for word in BAD_ADVICE:
        assert word not in text, (word, text)


def assert_disk_full_json(r, entries: int) -> None:
    err = r.json()["error"]
    assert r.returncode == 1 and err["exit_code"] == 1 and err["code"] == "unexpected", r.stdout
    assert err["reason"] == "disk_full", err
    assert f"{entries} journal entries" in err["message"] and "corrupt" not in err["message"], err


def journal_states(store: Path) -> list[tuple]:
    """The journal as it is; read-write, so that closing the last connection removes the
    WAL index as the CLI's own close does (a read-only one would leave it behind)."""
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT seq, client_order_id, state FROM journal ORDER BY seq").fetchall()
    finally:
        con.close()


def replay_and_check(down: Cli, sim_url: str, entries: list[tuple]) -> None:
    """Space is back: the store is intact, its journal as it was, and the entries replay to main."""
    assert journal_states(down.store_file) == entries
    down("audit", "verify").ok()  # the chain verifies (its wording is the audit command's own)
    up = dataclasses.replace(down, backend_url=sim_url)
    res = up("--password-stdin", "sync", "replay", "--json", stdin=PASSWORD + "\n")
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert res.json()["replay"]["status"] == "done"
    after = journal_states(down.store_file)
    assert [e[:2] for e in after] == [e[:2] for e in entries] and all(e[2] == "applied" for e in after), after


# --------------------------------------------------------------------------- a real full filesystem


def test_full_tmpfs_is_disk_full_not_corrupt_and_the_journal_replays_after(sim, cli_factory, tmpfs):
    up = dataclasses.replace(cli_factory(sim.url), home=tmpfs / "home")
    down, journal = backup_console(up)
    entries = len(journal)
    before = sha256(down.store_file)
    filler = fill(tmpfs)

    status = down("status", "--json")
    assert_disk_full_json(status, entries)
    assert_disk_full(status, entries, "is full: 0 bytes free there")  # stderr: the same message for a person
    place = down(
        "--password-stdin",
        "order",
        "place",
        "--client",
        "C1001",
        "--exchange",
        "NSE",
        "--symbol",
        "RELIANCE",
        "--side",
        "SELL",
        "--quantity",
        "1",
        "--product",
        "MIS",
        "--type",
        "MARKET",
        "--yes",
        stdin=PASSWORD + "\n",
    )
    assert_disk_full(place, entries, "is full")
    up_full = dataclasses.replace(down, backend_url=sim.url)  # main is back, the disk is still full
    assert_disk_full_json(
        up_full("--password-stdin", "sync", "replay", "--json", stdin=PASSWORD + "\n"), entries
    )
    assert_disk_full(down("audit", "verify"), entries, "is full")
    assert sha256(down.store_file) == before  # nothing was written, nothing "repaired"

    filler.unlink()
    replay_and_check(down, sim.url, journal)


def test_write_refused_by_a_full_disk_while_the_store_is_open(sim, cli_factory, tmpfs):
    """An agent holds the store open (its WAL index exists), so the store opens and the
    failure comes on the write: NOT accepted, with the same figures, and the journal is
    as it was."""
    up = dataclasses.replace(cli_factory(sim.url), home=tmpfs / "home")
    down, journal = backup_console(up)
    agent = sqlite3.connect(down.store_file)  # a reader, as a running agent is
    try:
        agent.execute("SELECT count(*) FROM journal").fetchone()
        filler = fill(tmpfs)
        r = down("--password-stdin", "squareoff", "--all", "--yes", stdin=PASSWORD + "\n")
        assert "NOT accepted, nothing was" in r.stderr, r.stderr
        assert_disk_full(r, len(journal), "is full: 0 bytes free there")
        assert journal_states(down.store_file) == journal
        filler.unlink()
    finally:
        agent.close()
    down("audit", "verify").ok()


# --------------------------------------------------------------------------- injected: no root needed


@pytest.fixture(scope="module")
def diskfull_shim(tmp_path_factory) -> str:
    return shims.build(tmp_path_factory, "diskfull")


def test_injected_enospc_is_disk_full_not_corrupt(sim, cli_factory, diskfull_shim):
    """Every write under the console's home fails with ENOSPC (the shim) while the
    filesystem itself has room: the refusal still says the disk would not let the store
    grow, counts the journal, exits 1 and leaves the store as it was."""
    down, journal = backup_console(cli_factory(sim.url))
    before = sha256(down.store_file)
    full = {"LD_PRELOAD": diskfull_shim, "FAULTSHIM_FULL_DIR": str(down.home.resolve())}
    status = down("status", "--json", **full)
    assert_disk_full_json(status, len(journal))
    assert_disk_full(status, len(journal), "refused to let the store grow")
    assert_disk_full(down("audit", "verify", **full), len(journal))
    assert sha256(down.store_file) == before
    replay_and_check(down, sim.url, journal)


@pytest.fixture(scope="module")
def fsync_shim(tmp_path_factory) -> str:
    return shims.build(tmp_path_factory, "syncfail")


def test_injected_eio_is_an_io_error_not_corrupt(sim, cli_factory, fsync_shim):
    """Every fsync fails with EIO (tests/faultshim/syncfail.c) with the disk far from full:
    the square-off is NOT accepted, the message says the disk reported an I/O error (not
    full, not corrupt), counts the journal, and the journal is as it was."""
    down, journal = backup_console(cli_factory(sim.url))
    r = down(
        "--password-stdin",
        "squareoff",
        "--all",
        "--yes",
        stdin=PASSWORD + "\n",
        LD_PRELOAD=fsync_shim,
        FAULTSHIM_SKIP="0",
    )
    assert r.returncode == 1 and "NOT accepted, nothing was" in r.stderr, r.stderr
    for word in (
        "reported an I/O error",
        "free there",
        f"{len(journal)} journal entries",
        "do not move or delete it",
    ):
        assert word in r.stderr, (word, r.stderr)
    for word in (*BAD_ADVICE, "is full"):
        assert word not in r.stderr, (word, r.stderr)
    assert journal_states(down.store_file) == journal


# --------------------------------------------------------------------------- a corrupt store that holds a journal


def test_corrupt_store_with_unsent_entries_is_not_advised_to_be_moved_aside(sim, cli_factory):
    """The rule holds for real corruption too: a store that fails its check but whose
    journal still reads is exit 8 (integrity), and the advice is to keep it for the
    entries' recovery, not to move it aside and build a fresh one."""
    down, journal = backup_console(cli_factory(sim.url))
    con = sqlite3.connect(down.store_file)
    try:  # damage an index of another table: the check fails, the journal's own pages stay readable
        root = con.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'ix_trades_client_id'"
        ).fetchone()[0]
        page = con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    with open(down.store_file, "r+b") as fh:
        fh.seek((root - 1) * page)
        fh.write(bytes((i * 7 + 13) % 251 for i in range(page)))

    r = down("status", "--json")
    err = r.json()["error"]
    assert r.returncode == 8 and err["code"] == "integrity" and err["reason"] == "corrupt", r.stdout
    for word in (
        "is corrupt",
        f"{len(journal)} journal entries not yet replayed to main",
        "do not move it aside",
    ):
        assert word in err["message"], (word, err["message"])
    assert "sync bod" not in err["message"], err["message"]


def test_newer_schema_with_unsent_entries_is_not_advised_to_be_moved_aside(tmp_path):
    """A store written by a newer Lifeboat is refused untouched; while it holds journal
    entries main has not seen, the advice is to upgrade, not to move it aside.  (The rows
    are written with plain SQL: journaling through the product needs an enrolled console,
    which is not what this is about.)"""
    from localstore.db import open_store
    from localstore.errors import StoreError

    path = tmp_path / "lifeboat.db"
    open_store(path).close()
    con = sqlite3.connect(path)
    try:
        for n in (1, 2):
            con.execute(
                "INSERT INTO journal (created_at, trading_date, console_id, user_id, mode, kind, "
                "client_order_id, client_id, payload, state, attempts, updated_at) VALUES ('2026-01-05', "
                "'2026-01-05', 'C7K2QX', 'dealer1', 'BACKUP', 'PLACE', ?, 'C1001', '{}', 'pending', 0, "
                "'2026-01-05')",
                (f"C7K2QX-260105-00000{n}",),
            )
        con.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
        con.commit()
    finally:
        con.close()
    before = sha256(path)
    with pytest.raises(StoreError) as info:
        open_store(path)
    message = str(info.value)
    assert "upgrade lifeboat" in message and "2 journal entries not yet replayed to main" in message, message
    assert "do not move it aside" in message and "sync bod" not in message, message
    assert sha256(path) == before
