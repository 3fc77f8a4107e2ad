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
from sync import checkpoint_send

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _file_anchors():
    """Anchors in the config dir's 0600 file, in this process and in the CLI's (no keyring).
    The process's keyring is left exactly as found, even not chosen yet: keyring picks its
    backend once, from the backend classes imported by then, and a later module's fixture
    must get the choice it would have got without this one."""
    import keyring.core

    previous = keyring.core._keyring_backend  # None when not chosen yet
    keyring.set_keyring(fail.Keyring())
    checkpoints.forget_keys()
    yield
    checkpoints.forget_keys()
    keyring.core._keyring_backend = previous


def _store(home: Path, *, enrol: bool = True):
    home.mkdir(exist_ok=True)
    store = open_store(home / "lifeboat.db")
    if enrol:
        Anchors(home).enrol(store.console_id)  # what an online login does (sync.identity)
    return store


def _append(store, n: int, start: int = 1) -> None:
    for i in range(start, start + n):
        with store.write() as s:
            audit.append(
                s,
                user_id="dealer1",
                mode="BACKUP",
                action="order_place",
                payload={"client_id": f"C{i}", "quantity": i * 10},
            )


def rewrite_row(db: Path, row_id: int, action: str = "order_cancel") -> None:
    """The attack: edit a row, then recompute every later hash and the head with the
    project's own functions, as whoever holds the file can."""
    conn = sqlite3.connect(db)
    conn.execute("UPDATE audit_log SET action = ? WHERE id = ?", (action, row_id))
    prev = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (row_id - 1,)).fetchone()
    prev = prev[0] if prev else audit.GENESIS_HASH
    rows = conn.execute(
        "SELECT id, at, user_id, mode, action, payload FROM audit_log WHERE id >= ? ORDER BY id", (row_id,)
    ).fetchall()
    for rid, at, user_id, mode, act, payload in rows:
        digest = audit.row_hash(
            id=rid, at=at, user_id=user_id, mode=mode, action=act, payload=json.loads(payload), prev_hash=prev
        )
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, rid))
        prev = digest
    conn.execute("UPDATE audit_head SET last_hash = ? WHERE id = 1", (prev,))
    conn.commit()
    conn.close()


def verify_cli(home: Path, *args: str, backend: str = "http://127.0.0.1:9", **env: str):
    full_env = {k: v for k, v in os.environ.items() if k not in ("LIFEBOAT_HOME", "LIFEBOAT_USER")}
    full_env.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "--home",
            str(home),
            "--backend",
            backend,
            "audit",
            "verify",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=REPO,
    )


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
    assert proc.stderr.startswith(
        "audit chain broken at row 4: row 4 does not match signed checkpoint #4 (queued for main)"
    ), proc.stderr
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


# --------------------------------------------------------------------------- main as the witness


@pytest.fixture
def test_keyring(tmp_path, monkeypatch):
    """The file-backed test keyring (tests/keyring_backend.py; no OS keyring runs here): the
    token and the anchors an in-process login keeps are the ones the CLI subprocesses read."""
    from tests.keyring_backend import TestKeyring
    from tests.replay_env import test_env

    for name, value in test_env(
        tmp_path
    ).items():  # make_console sets these in os.environ: undone at teardown
        monkeypatch.setenv(name, value)
    keyring.set_keyring(TestKeyring())
    yield


def _main_latest(url: str, console_id: str) -> dict | None:
    import httpx

    with httpx.Client(base_url=url + "/api/v1", timeout=10) as h:
        token = h.post("/session", json={"user_id": "super1", "password": "demo"}).json()["access_token"]
        r = h.get(
            "/audit/checkpoints/latest",
            params={"console_id": console_id},
            headers={"Authorization": f"Bearer {token}"},
        )
    return r.json() if r.status_code == 200 else None


def test_checkpoints_queued_while_main_is_down_are_witnessed_when_it_is_back(sim, tmp_path, test_keyring):
    import asyncio

    from backend_client.client import BackendClient
    from tests.replay_env import make_console

    con = make_console(sim.url, tmp_path)  # super1's online login: key registered, head checkpointed and sent
    store = con.store
    first = checkpoints.newest(store)
    assert first is not None and first["witnessed_at"] is not None and first["reason"] == "login"
    assert _main_latest(sim.url, store.console_id)["number"] == first["number"]
    con.squareoff("C1001")  # backup work: audit rows past the witnessed head
    made = checkpoints.make(store, mode="BACKUP", reason="mode_change")
    assert made["number"] == first["number"] + 1

    async def flush(url: str):
        async with BackendClient(url, retries=0) as c:
            if url == sim.url:
                await c.login("super1", "demo")
            return await checkpoint_send.flush(store, c)

    down = asyncio.run(flush("http://127.0.0.1:9"))  # main down: nothing lost, nothing marked
    assert down.sent == [] and down.queued == 1 and down.stopped.startswith("main unavailable")
    assert checkpoints.newest(store)["witnessed_at"] is None
    p = console_cli(con, "positions", "--json")  # the next online command sends the queue once main answered
    assert p.returncode == 0, p.stderr
    assert _main_latest(sim.url, store.console_id)["seq"] == made["seq"]
    assert checkpoints.newest(store)["witnessed_at"] is not None
    assert asyncio.run(flush(sim.url)).sent == []  # nothing left queued
    con.close()
    proc = verify_cli(con.home, "--json", backend=sim.url, **con.env)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["verdict"] == "intact", proc.stdout + proc.stderr
    assert (
        out["checkpoints"]["witnessed"] == out["checkpoints"]["total"] and out["checkpoints"]["queued"] == 0
    )
    assert out["main_latest"]["number"] == made["number"]
    assert "main's latest witnessed checkpoint" in out["covered_by"]


def console_cli(con, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The real CLI for ``con`` (tests/replay_env.Console): super1, its home, its main."""
    from tests import testclock

    env = testclock.keep(
        {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_") or k == "LIFEBOAT_CONFIG_DIR"}
    )
    env.update(con.env, PYTHONPATH=str(REPO))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "console.cli",
            "--home",
            str(con.home),
            "--backend",
            con.url,
            "--user",
            "super1",
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
    )


def _signed(key, claims: dict) -> dict:
    import base64

    from contract.auditchain import signing_bytes
    from localstore.anchors import public_key_b64

    return {
        "claims": claims,
        "public_key": public_key_b64(key),
        "signature": base64.b64encode(key.sign(signing_bytes(claims))).decode(),
    }


def test_main_accepts_only_a_registered_key_a_good_signature_and_a_chain_that_extends(sim):
    """mainsim's rules over plain HTTP; the chain is built with the one shared row_hash."""
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from contract.auditchain import GENESIS_HASH, row_hash
    from localstore.anchors import public_key_b64

    def chain(actions: list[str]) -> tuple[list[dict], list[str]]:
        rows, hashes, prev = [], [], GENESIS_HASH
        for i, action in enumerate(actions, start=1):
            row = {
                "id": i,
                "at": f"2026-01-05T09:00:0{i}+00:00",
                "user_id": "dealer1",
                "mode": "BACKUP",
                "action": action,
                "payload": {"n": i, "price": "101.05"},
            }
            prev = row_hash(**row, prev_hash=prev)
            rows.append(row)
            hashes.append(prev)
        return rows, hashes

    def claims(number: int, seq: int, head: str) -> dict:
        return {
            "console_id": "TESTC1",
            "number": number,
            "seq": seq,
            "head_hash": head,
            "at": "2026-01-05T09:01:00+00:00",
            "mode": "BACKUP",
            "reason": "mode_change",
        }

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    rows, hashes = chain(["login", "order_place", "square_off", "order_cancel", "logout"])
    with httpx.Client(base_url=sim.url + "/api/v1", timeout=10) as h:
        token = h.post("/session", json={"user_id": "dealer1", "password": "demo"}).json()["access_token"]
        h.headers["Authorization"] = f"Bearer {token}"
        first = {"checkpoint": _signed(key, claims(1, 3, hashes[2])), "rows": rows[:3]}
        r = h.post("/audit/checkpoints", json=first)
        assert r.status_code == 403 and "No checkpoint key is registered" in r.json()["error"]["message"]
        r = h.post("/audit/checkpoint-keys", json={"console_id": "TESTC1", "public_key": public_key_b64(key)})
        assert r.status_code == 201
        forged = {
            "checkpoint": {**_signed(other, claims(1, 3, hashes[2])), "public_key": public_key_b64(key)},
            "rows": rows[:3],
        }
        r = h.post("/audit/checkpoints", json=forged)
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_signature"
        assert h.post("/audit/checkpoints", json=first).status_code == 201
        assert (
            h.post("/audit/checkpoints", json=first).status_code == 200
        )  # the same one again: a lost answer
        # row 2 rewritten and every later hash recomputed: rows 4-5 no longer lead from the witnessed head
        bad_rows, bad_hashes = chain(["login", "order_cancel", "square_off", "order_cancel", "logout"])
        r = h.post(
            "/audit/checkpoints",
            json={"checkpoint": _signed(key, claims(2, 5, bad_hashes[4])), "rows": bad_rows[3:]},
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "chain_not_extending"
        assert "do not lead from main's last witnessed checkpoint #1 (row 3)" in r.json()["error"]["message"]
        r = h.post(
            "/audit/checkpoints",
            json={"checkpoint": _signed(key, claims(2, 3, bad_hashes[2])), "rows": [], "purpose": "replay"},
        )
        assert r.status_code == 409 and r.json()["error"]["message"].startswith(
            "Replay refused: row 3 of console"
        )
        r = h.post(
            "/audit/checkpoints", json={"checkpoint": _signed(key, claims(2, 2, hashes[1])), "rows": []}
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "seq_not_growing"
        nan_rows = [
            rows[3],
            {**rows[4], "payload": {"price": float("nan")}},
        ]  # JSON main cannot hash: 422, no 500
        r = h.post(
            "/audit/checkpoints",
            headers={"Content-Type": "application/json"},
            content=json.dumps({"checkpoint": _signed(key, claims(2, 5, hashes[4])), "rows": nan_rows}),
        )
        assert r.status_code == 422 and "a payload cannot be hashed" in r.json()["error"]["message"]
        r = h.post(
            "/audit/checkpoints", json={"checkpoint": _signed(key, claims(2, 5, hashes[4])), "rows": rows[3:]}
        )
        assert r.status_code == 201 and r.json()["seq"] == 5
        latest = h.get("/audit/checkpoints/latest", params={"console_id": "TESTC1"}).json()
        assert (latest["number"], latest["seq"], latest["head_hash"]) == (2, 5, hashes[4])
        assert h.get("/audit/checkpoints/latest", params={"console_id": "NOSUCH"}).status_code == 404


def test_replay_after_a_rewrite_is_refused_with_409_and_the_journal_is_kept(sim, tmp_path, test_keyring):
    from localstore.models import JournalState
    from tests.replay_env import Main, make_console

    con = make_console(sim.url, tmp_path)  # login: main witnesses the chain up to the login rows
    witnessed = checkpoints.newest(con.store)["seq"]
    con.squareoff("C1001")
    coids = [e.client_order_id for e in con.journal()]
    assert coids
    con.close()
    db = con.home / "lifeboat.db"
    rewrite_row(db, 1, action="nothing_to_see")  # before main's witnessed head, every later hash recomputed
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_checkpoints")  # and the local checkpoints gone
    conn.commit()
    conn.close()
    assert (
        verify_cli(con.home, backend="http://127.0.0.1:9", **con.env).returncode == 0
    )  # nothing left locally
    proc = verify_cli(con.home, "--json", backend=sim.url, **con.env)  # main still holds what it witnessed
    out = json.loads(proc.stdout)
    assert proc.returncode == 8 and out["first_bad_row"] == 1, proc.stdout + proc.stderr
    assert f"row {witnessed} does not match main's latest witnessed checkpoint" in out["error"]["message"]
    p = console_cli(con, "--password-stdin", "sync", "replay", "--json", stdin="demo\n")
    assert p.returncode == 8, p.stdout + p.stderr
    out = json.loads(p.stdout)
    assert out["ok"] is False and out["verdict"] == "refused"
    assert out["error"]["code"] == "integrity" and out["error"]["reason"] == "replay_refused"
    assert "main refused the replay" in out["error"]["message"]
    assert f"(row {witnessed})" in out["error"]["message"] or f"row {witnessed} " in out["error"]["message"]
    assert all(e.state is JournalState.PENDING for e in con.journal())  # kept, nothing sent
    main = Main(sim.url)
    try:
        assert not [o for o in main.orders() if o["client_order_id"].startswith(tuple(coids))]
    finally:
        main.close()
    con.close()


def test_each_mode_change_of_the_runtime_makes_a_checkpoint_sent_once_main_is_online(
    sim, tmp_path, test_keyring
):
    """The runtime (agent or screen) checkpoints the head at each mode change it records;
    in BACKUP it stays queued, back ONLINE the queue goes to main."""
    import asyncio

    from backend_client.client import BackendClient
    from backend_client.detector import Mode
    from sync.runtime import Runtime
    from tests.replay_env import make_console

    con = make_console(sim.url, tmp_path)
    store = con.store
    before = checkpoints.newest(store)["number"]

    async def go():
        async with BackendClient(sim.url) as c:
            await c.login("super1", "demo")
            rt = Runtime(store, c, mode="ONLINE", user_id="super1")
            tasks = [asyncio.create_task(rt._record_modes()), asyncio.create_task(rt._checkpoint_loop())]
            rt.detector.force(Mode.BACKUP, "super1", rt.clock())  # a supervisor's override: BACKUP
            while checkpoints.newest(store)["number"] == before:
                await asyncio.sleep(0.02)
            in_backup = checkpoints.newest(store)
            await asyncio.sleep(0.3)
            assert checkpoints.newest(store)["witnessed_at"] is None  # main is not asked in BACKUP
            rt.detector.force(Mode.ONLINE, "super1", rt.clock())
            while (
                checkpoints.newest(store)["number"] == in_backup["number"]
                or checkpoints.newest(store)["witnessed_at"] is None
            ):
                await asyncio.sleep(0.02)
            rt._mode_queue.put_nowait(None)
            tasks[1].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return in_backup, checkpoints.newest(store)

    in_backup, back_online = asyncio.run(asyncio.wait_for(go(), 30))
    assert (in_backup["reason"], in_backup["mode"], in_backup["witnessed_at"]) == (
        "mode_change",
        "BACKUP",
        None,
    )
    assert back_online["number"] == in_backup["number"] + 1 and back_online["mode"] == "ONLINE"
    assert back_online["witnessed_at"] is not None
    assert _main_latest(sim.url, store.console_id)["number"] == back_online["number"]
    con.close()
