"""The fast paths of backup mode and `lifeboat status` keep their guarantees.

The journal's hot path runs on a Core Connection (checks in one statement, the
audit row through ``audit.append_core``), `status` reads with plain SQL and opens
the store without the ORM.  These tests pin that the fast paths write the same
rows and hashes as the ORM ones, use the position index, and that the status path
really stays light (a subprocess looks at ``sys.modules``).  Real SQLite files in
tmp dirs; nothing mocked.  No timing assertions (speed is in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from localstore import audit
from localstore.db import open_store
from localstore.models import AuditRow, JournalKind, JournalState
from sync import journal, status
from sync.journal import Intent

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 3, 2, 4, 5, 6, 789012, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "lifeboat.db")
    yield s
    s.close()


def test_append_core_writes_the_same_row_and_hash_as_append(tmp_path):
    payload = {"entries": [{"seq": 1, "kind": "PLACE"}], "count": 1, "password": "hunter2", "note": "é"}
    orm_store, core_store = open_store(tmp_path / "orm.db"), open_store(tmp_path / "core.db")
    try:
        with orm_store.write() as s:
            audit.append(s, user_id="dealer1", mode="BACKUP", action="order_place", payload=payload, at=AT)
        with core_store.write_core() as conn:
            new_id, digest = audit.append_core(conn, user_id="dealer1", mode="BACKUP", action="order_place",
                                               payload=payload, at=AT)
        rows = []
        for st in (orm_store, core_store):
            with st.read() as s:
                r = s.scalars(select(AuditRow)).one()
                rows.append((r.id, r.at, r.user_id, r.mode, r.action, r.payload, r.prev_hash, r.hash))
                assert audit.verify(s).ok
        assert rows[0] == rows[1]
        assert (new_id, digest) == (rows[1][0], rows[1][7])
        assert "hunter2" not in rows[1][5]  # redacted on the fast path too
    finally:
        orm_store.close()
        core_store.close()


def test_core_and_orm_appends_chain_together_and_verify(store):
    for i in range(3):
        with store.write() as s:
            audit.append(s, user_id="u", mode="ONLINE", action="orm", payload={"i": i})
        with store.write_core() as conn:
            audit.append_core(conn, user_id="u", mode="BACKUP", action="core", payload={"i": i})
    with store.read() as s:
        res = audit.verify(s)
    assert res.ok and res.rows == 6


def test_many_intents_get_their_own_seqs_in_order(store):
    intents = [Intent(JournalKind.SQUARE_OFF, f"C{i % 7}", "NSE", f"SYM{i}", "MIS", payload={"flatten": True, "i": i})
               for i in range(1200)]  # more than one 500-id lookup chunk
    receipts = journal.write(store, list(reversed(intents)), user_id="super1", mode="BACKUP",
                             trading_date=date(2026, 3, 2), audit_action="square_off")
    with store.read_core() as conn:
        stored = {seq: coid for seq, coid in conn.execute(text("SELECT seq, client_order_id FROM journal"))}
        payload_i = {seq: json.loads(p)["i"] for seq, p in conn.execute(text("SELECT seq, payload FROM journal"))}
    assert len(receipts) == 1200 == len(stored)
    assert [stored[r.seq] for r in receipts] == [r.client_order_id for r in receipts]
    assert [payload_i[r.seq] for r in receipts] == list(range(1199, -1, -1))
    assert [r.seq for r in receipts] == sorted(r.seq for r in receipts)


def test_pending_lookup_of_a_position_uses_the_position_index(store):
    from localstore.models import Exchange, Product

    stmt = journal._REDUCERS_OF_POSITION.params(k_client="C1", k_exchange=Exchange.NSE, k_symbol="ITC",
                                                k_product=Product.MIS)
    sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.read_core() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_journal_position" in plan, plan


def test_status_states_are_the_journal_states():
    assert set(status.UNFINISHED_STATES) == {s.value for s in journal.UNFINISHED_STATES}
    from localstore.models import FINAL_JOURNAL_STATES

    assert set(status.FINAL_STATES) == {s.value for s in FINAL_JOURNAL_STATES}
    assert set(status.UNFINISHED_STATES) | set(status.FINAL_STATES) | {"conflict", "held"} == \
        {s.value for s in JournalState}


def test_store_status_reads_what_was_written(store):
    receipts = journal.write(store, [Intent(JournalKind.CANCEL, "C1", "NSE", "ITC", "MIS", target_order_id="O1")],
                             user_id="dealer1", mode="BACKUP", trading_date=date(2026, 3, 2),
                             audit_action="order_cancel", now=AT)
    with store.read_core() as conn:
        forced, unfinished = status.mode_inputs(conn)
        st = status.store_status(conn)
    assert (forced, unfinished) == (None, 1)
    assert st["depth"] == 1 and st["unacknowledged"] == 1 and st["bod_at"] is None
    assert st["unacknowledged_entries"] == [{
        "seq": receipts[0].seq, "kind": "CANCEL", "client_order_id": receipts[0].client_order_id,
        "client_id": "C1", "symbol": "ITC", "state": "pending", "created_at": AT.isoformat()}]
    journal.acknowledge(store, [receipts[0].seq])
    with store.read_core() as conn:
        assert status.store_status(conn)["unacknowledged"] == 0


def _modules_after(code: str, home: Path) -> set[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LIFEBOAT_HOME": str(home),
           "LIFEBOAT_BACKEND_URL": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


HEAVY = ("localstore.models", "backend_client.wire", "alembic", "sqlalchemy.orm", "textual", "cryptography",
         "keyring")


def test_status_command_stays_off_the_heavy_modules(tmp_path):
    open_store(tmp_path / "lifeboat.db").close()  # a store at head already (no migration to run)
    code = ("import sys; sys.argv = ['lifeboat', 'status', '--json']\n"
            "from console import cli\n"
            "try:\n    cli.app()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n")
    mods = _modules_after(code, tmp_path)
    assert "console.service" in mods and "sync.status" in mods  # it really ran the status path
    assert not [m for m in mods if m.split(".")[0] in HEAVY or m in HEAVY], sorted(
        m for m in mods if m.split(".")[0] in HEAVY or m in HEAVY)


def test_opening_a_store_at_head_needs_neither_alembic_nor_the_orm(tmp_path):
    open_store(tmp_path / "lifeboat.db").close()
    mods = _modules_after(f"from localstore.db import open_store; open_store({str(tmp_path / 'lifeboat.db')!r}).close()",
                          tmp_path)
    assert "sqlalchemy" in mods
    assert not {"alembic", "sqlalchemy.orm", "localstore.models"} & mods
