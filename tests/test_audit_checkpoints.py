"""Signed audit checkpoints (issue 10, "unanchored audit chain").

The finding: editing audit row 4 and recomputing every later hash and the head with the
project's own ``row_hash`` left `lifeboat audit verify` saying "intact".  Here the
tampering is done exactly that way (localstore.audit's own functions, raw SQL on the real
SQLite file), and `audit verify` runs as the real CLI.  Checkpoints are signed with the
console's key from localstore.anchors (a 0600 file in the test's own config dir: no OS
keyring runs on this headless machine); main is a real mainsim on loopback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from localstore import audit, checkpoints
from localstore.anchors import Anchors
from localstore.db import open_store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _file_anchors():
    """Anchors in the config dir's 0600 file, in this process and in the CLI's (no keyring)."""
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    checkpoints.forget_keys()
    yield
    checkpoints.forget_keys()
    keyring.set_keyring(previous)


def _store(home: Path, *, enrol: bool = True):
    home.mkdir(exist_ok=True)
    store = open_store(home / "lifeboat.db")
    if enrol:
        Anchors(home).enrol(store.console_id)  # what an online login does (sync.identity)
    return store


def _append(store, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        with store.write() as s:
            audit.append(s, user_id="dealer1", mode="BACKUP", action="order_place",
                         payload={"client_id": f"C{i}", "quantity": i * 10})


def rewrite_row(db: Path, row_id: int, action: str = "order_cancel") -> None:
    """The attack: edit a row, then recompute every later hash and the head with the
    project's own functions, as whoever holds the file can."""
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_log SET action = ? WHERE id = ?", (action, row_id))
    prev = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (row_id - 1,)).fetchone()
    prev = prev[0] if prev else audit.GENESIS_HASH
    rows = conn.execute("SELECT id, at, user_id, mode, action, payload FROM audit_log WHERE id >= ? ORDER BY id",
                        (row_id,)).fetchall()
    for rid, at, user_id, mode, act, payload in rows:
        digest = audit.row_hash(id=rid, at=at, user_id=user_id, mode=mode, action=act,
                                payload=json.loads(payload), prev_hash=prev)
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, rid))
        prev = digest
    conn.execute("UPDATE audit_head SET last_hash = ? WHERE id = 1", (prev,))
    conn.commit()
    conn.close()


def verify_cli(home: Path, *args: str, backend: str = "http://127.0.0.1:9", **env: str):
    full_env = {k: v for k, v in os.environ.items() if k not in ("LIFEBOAT_HOME", "LIFEBOAT_USER")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "console.cli", "--home", str(home), "--backend", backend,
                           "audit", "verify", *args], capture_output=True, text=True, timeout=60, env=full_env,
                          cwd=REPO)


# --------------------------------------------------------------------------- local checkpoints


def test_rewritten_row_with_recomputed_hashes_is_found_at_its_row(tmp_path, monkeypatch):
    """A checkpoint on every row (N = 1): verify names row 4 exactly."""
    monkeypatch.setattr(checkpoints, "EVERY", 1)
    home = tmp_path / "home"
    store = _store(home)
    _append(store, 8)
    store.close()
    assert verify_cli(home).returncode == 0
    rewrite_row(home / "lifeboat.db", 4)
    s = open_store(home / "lifeboat.db")
    with s.read() as session:
        assert audit.verify(session).ok  # the chain's own links say nothing: the finding
    s.close()
    proc = verify_cli(home)
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert proc.stderr.startswith("audit chain broken at row 4: row 4 does not match signed checkpoint #4 "
                                  "(queued for main)"), proc.stderr
    assert "intact" not in proc.stdout


def test_rewrite_between_two_checkpoints_names_the_stretch_it_can_prove(tmp_path):
    """Checkpoints at rows 3 and 8 (as a mode change and a replay make them): the edit
    of row 4 is placed in rows 4-8, the first row no matching signed head proves."""
    home = tmp_path / "home"
    store = _store(home)
    _append(store, 3)
    assert checkpoints.make(store, mode="BACKUP", reason="mode_change")["seq"] == 3
    _append(store, 5, start=4)
    assert checkpoints.make(store, mode="RECOVERING", reason="replay")["seq"] == 8
    store.close()
    rewrite_row(home / "lifeboat.db", 4)
    proc = verify_cli(home, "--json")
    assert proc.returncode == 8
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["error"]["code"] == "integrity" and out["error"]["exit_code"] == 8
    assert out["first_bad_row"] == 4
    assert "row 8 does not match signed checkpoint #2" in out["error"]["message"]
    assert "rows 1-3 match signed checkpoint #1" in out["error"]["message"]
    assert "the first row that differs is one of rows 4-8" in out["error"]["message"]


def test_rows_after_the_newest_checkpoint_are_reported_as_not_covered_never_intact(tmp_path):
    home = tmp_path / "home"
    store = _store(home)
    _append(store, 5)
    checkpoints.make(store, mode="ONLINE", reason="mode_change")
    _append(store, 3, start=6)
    store.close()
    proc = verify_cli(home)
    assert proc.returncode == 0, proc.stderr
    assert "intact" not in proc.stdout
    assert "rows 1-5 match signed checkpoint #1 (queued for main)" in proc.stdout
    assert "rows 6-8 are not yet covered by a checkpoint" in proc.stdout
    out = json.loads(verify_cli(home, "--json").stdout)
    assert out["ok"] is True and out["verdict"] == "uncovered" and out["uncovered_rows"] == [6, 8]
    assert out["checkpoints"] == {"total": 1, "witnessed": 0, "queued": 1, "untrusted": []}


def test_a_store_never_enrolled_has_no_checkpoint_and_nothing_reads_intact(tmp_path):
    home = tmp_path / "home"
    store = _store(home, enrol=False)
    _append(store, 3)
    assert checkpoints.make(store, mode="ONLINE", reason="mode_change") is None
    store.close()
    proc = verify_cli(home)
    assert proc.returncode == 0 and "rows 1-3 are not yet covered by a checkpoint" in proc.stdout
    assert "intact" not in proc.stdout


def test_a_deleted_or_forged_checkpoint_proves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "EVERY", 2)
    home = tmp_path / "home"
    store = _store(home)
    _append(store, 6)  # checkpoints #1-#3 at rows 2, 4, 6
    store.close()
    db = home / "lifeboat.db"
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_checkpoints WHERE number = 2")
    conn.commit()
    conn.close()
    proc = verify_cli(home)
    assert proc.returncode == 8 and "signed checkpoint #2 is missing from the store" in proc.stderr
    # the editor rewrites row 4 and re-signs every checkpoint with a key of their own
    other = tmp_path / "other"
    forger = _store(other)
    forger.close()
    rewrite_row(db, 4)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_checkpoints")
    conn.commit()
    conn.close()
    checkpoints.forget_keys()
    s = open_store(db)
    with s.write_core() as c:  # signed with the other home's key: not one this console holds
        checkpoints.sign_in(c, seq=6, head_hash=_head(db), mode="BACKUP", reason="forged", home=other)
    s.close()
    proc = verify_cli(home)
    assert proc.returncode == 0 and "rows 1-6 are not yet covered by a checkpoint" in proc.stdout
    assert "#1 are not signed by a key this console holds" in proc.stderr


def _head(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT last_hash FROM audit_head").fetchone()[0]
    finally:
        conn.close()
