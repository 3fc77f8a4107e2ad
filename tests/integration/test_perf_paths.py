"""The fast paths of backup mode and `lifeboat status` keep their guarantees.

The journal's hot path runs on a Core Connection (checks in one statement, the
audit row through ``audit.append_core``), `status` reads with plain SQL and opens
the store without the ORM.  These tests pin that the fast paths write the same
rows and hashes as the ORM ones, use the position index, and that the status path
and a backup-mode square-off really stay light (a subprocess looks at
``sys.modules``).  localstore.core_tables is the one schema: the models are mapped onto it and
a migrated store has exactly its tables.  Real SQLite files in
tmp dirs; nothing mocked.  No timing assertions (speed is in bench/)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from localstore import audit, core_tables, journal_store
from localstore.db import open_store
from localstore.models import AuditRow, JournalKind, JournalState
from sync import status
from sync.trading import journal
from sync.trading.journal import Intent
from tests import testclock
from tests.cli_env import enrolled_for_test

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2026, 3, 2, 4, 5, 6, 789012, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = enrolled_for_test(open_store(tmp_path / "lifeboat.db"))  # the journal's own tests: no online login
    yield s
    s.close()


def test_append_core_writes_the_same_row_and_hash_as_append(tmp_path):
    payload = {"entries": [{"seq": 1, "kind": "PLACE"}], "count": 1, "password": "hunter2", "note": "é"}
    orm_store, core_store = open_store(tmp_path / "orm.db"), open_store(tmp_path / "core.db")
    try:
        with orm_store.write() as s:
            audit.append(s, user_id="dealer1", mode="BACKUP", action="order_place", payload=payload, at=AT)
        with core_store.write_core() as conn:
            new_id, digest = audit.append_core(
                conn, user_id="dealer1", mode="BACKUP", action="order_place", payload=payload, at=AT
            )
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
    intents = [
        Intent(
            JournalKind.SQUARE_OFF, f"C{i % 7}", "NSE", f"SYM{i}", "MIS", payload={"flatten": True, "i": i}
        )
        for i in range(1200)
    ]  # more than one 500-id lookup chunk
    receipts = journal.write(
        store,
        list(reversed(intents)),
        user_id="super1",
        mode="BACKUP",
        trading_date=date(2026, 3, 2),
        audit_action="square_off",
    )
    with store.read_core() as conn:
        stored = dict(conn.execute(text("SELECT seq, client_order_id FROM journal")).all())
        payload_i = {
            seq: json.loads(p)["i"] for seq, p in conn.execute(text("SELECT seq, payload FROM journal"))
        }
    assert len(receipts) == 1200 == len(stored)
    assert [stored[r.seq] for r in receipts] == [r.client_order_id for r in receipts]
    assert [payload_i[r.seq] for r in receipts] == list(range(1199, -1, -1))
    assert [r.seq for r in receipts] == sorted(r.seq for r in receipts)


def test_pending_lookup_of_a_position_uses_the_position_index(store):
    from localstore.models import Exchange, Product

    stmt = journal_store._REDUCERS_OF_POSITION.stmt.params(
        k_client="C1", k_exchange=Exchange.NSE, k_symbol="ITC", k_product=Product.MIS
    )
    sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.read_core() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    assert "ix_journal_position" in plan, plan


def test_status_states_are_the_journal_states():
    assert set(status.UNFINISHED_STATES) == set(journal.UNFINISHED_STATES)
    from localstore.models import FINAL_JOURNAL_STATES

    assert set(status.FINAL_STATES) == {s.value for s in FINAL_JOURNAL_STATES}
    assert set(status.HELD_STATES) == {JournalState.HELD.value, JournalState.CONFLICT.value}
    assert set(status.UNFINISHED_STATES) | set(status.FINAL_STATES) | set(status.HELD_STATES) == {
        s.value for s in JournalState
    }


def test_store_status_reads_what_was_written(store):
    receipts = journal.write(
        store,
        [Intent(JournalKind.CANCEL, "C1", "NSE", "ITC", "MIS", target_order_id="O1")],
        user_id="dealer1",
        mode="BACKUP",
        trading_date=date(2026, 3, 2),
        audit_action="order_cancel",
        now=AT,
    )
    with store.read_core() as conn:
        forced, unfinished = status.mode_inputs(conn)
        st = status.store_status(conn)
    assert (forced, unfinished) == (None, 1)
    assert st["depth"] == 1 and st["unacknowledged"] == 1 and st["bod_at"] is None
    assert st["unacknowledged_entries"] == [
        {
            "seq": receipts[0].seq,
            "kind": "CANCEL",
            "client_order_id": receipts[0].client_order_id,
            "client_id": "C1",
            "symbol": "ITC",
            "state": "pending",
            "created_at": AT.isoformat(),
        }
    ]
    journal.acknowledge(store, [receipts[0].seq])
    with store.read_core() as conn:
        assert status.store_status(conn)["unacknowledged"] == 0


def _modules_after(code: str, home: Path) -> set[str]:
    env = testclock.keep(
        {
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "LIFEBOAT_HOME": str(home),
            "LIFEBOAT_BACKEND_URL": "http://127.0.0.1:9",
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


HEAVY = (
    "localstore.models",
    "contract.wire",
    "alembic",
    "sqlalchemy.orm",
    "textual",
    "cryptography",
    "keyring",
)


def test_status_command_stays_off_the_heavy_modules(tmp_path):
    open_store(tmp_path / "lifeboat.db").close()  # a store at head already (no migration to run)
    code = (
        "import sys; sys.argv = ['lifeboat', 'status', '--json']\n"
        "from console import cli\n"  # main down, nobody logged in here: UNAVAILABLE, exit 5
        "try:\n    cli.app()\nexcept SystemExit as e:\n    assert e.code == 5, e.code\n"
    )
    mods = _modules_after(code, tmp_path)
    assert "console.service" in mods and "sync.status" in mods  # it really ran the status path
    assert not [m for m in mods if m.split(".")[0] in HEAVY or m in HEAVY], sorted(
        m for m in mods if m.split(".")[0] in HEAVY or m in HEAVY
    )


def test_opening_a_store_at_head_needs_neither_alembic_nor_the_orm(tmp_path):
    open_store(tmp_path / "lifeboat.db").close()
    mods = _modules_after(
        f"from localstore.db import open_store; open_store({str(tmp_path / 'lifeboat.db')!r}).close()",
        tmp_path,
    )
    assert "sqlalchemy" in mods
    assert not {"alembic", "sqlalchemy.orm", "localstore.models"} & mods


def test_the_models_are_mapped_onto_the_core_tables_and_the_migrated_store_has_them(tmp_path):
    """One schema: every ORM class is mapped onto its table in localstore.core_tables (the
    same object, so the fast paths and the models cannot differ in a column, a type or an
    enum), and a store migrated by Alembic has exactly those tables, columns (name,
    stored type, nullability, primary key), indexes, unique, check and foreign-key
    constraints."""
    from sqlalchemy import inspect
    from sqlalchemy.dialects import sqlite

    from localstore.models import GENESIS_HASH, Base, JournalKind

    assert core_tables.metadata.tables, "no tables to compare"
    assert Base.metadata is core_tables.metadata
    mapped = {m.local_table.name: m.local_table for m in Base.registry.mappers}
    assert set(mapped) == set(core_tables.metadata.tables)
    for name, table in mapped.items():
        assert table is getattr(core_tables, name) is core_tables.metadata.tables[name], name

    dialect = sqlite.dialect()
    s = open_store(tmp_path / "lifeboat.db")
    try:
        with s.engine.connect() as conn:
            insp = inspect(conn)
            assert set(insp.get_table_names()) - {"alembic_version"} == set(core_tables.metadata.tables)
            for name, table in core_tables.metadata.tables.items():
                got = [
                    (c["name"], c["type"].compile(dialect), c["nullable"], bool(c["primary_key"]))
                    for c in insp.get_columns(name)
                ]
                want = [(c.name, c.type.compile(dialect), c.nullable, c.primary_key) for c in table.columns]
                assert got == want, name
                assert {
                    (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in insp.get_indexes(name)
                } == {(i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}, name
                assert {tuple(u["column_names"]) for u in insp.get_unique_constraints(name)} == {
                    tuple(c.name for c in u.columns)
                    for u in table.constraints
                    if type(u).__name__ == "UniqueConstraint"
                } | {(c.name,) for c in table.columns if c.unique}, name
                assert {c["name"] for c in insp.get_check_constraints(name)} == {
                    c.name for c in table.constraints if type(c).__name__ == "CheckConstraint"
                }, name
                assert {
                    (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                    for f in insp.get_foreign_keys(name)
                } == {
                    ((f.parent.name,), f.column.table.name, (f.column.name,)) for f in table.foreign_keys
                }, name
    finally:
        s.close()
    assert {
        core_tables.KIND_PLACE,
        core_tables.KIND_MODIFY,
        core_tables.KIND_CANCEL,
        core_tables.KIND_SQUARE_OFF,
    } == {k.value for k in JournalKind}
    assert core_tables.GENESIS_HASH == GENESIS_HASH == audit.GENESIS_HASH


def test_journal_takes_model_enums_and_strings_alike(store):
    receipts = journal.write(
        store,
        [
            Intent(JournalKind.PLACE, "C1", "NSE", "ITC", "MIS", payload={"side": "SELL"}),
            Intent("SQUARE_OFF", "C1", "NSE", "ITC", "MIS"),
        ],
        user_id="dealer1",
        mode="BACKUP",
        trading_date=date(2026, 3, 2),
        audit_action="t",
    )
    assert receipts[0].kind is JournalKind.PLACE and receipts[1].kind == "SQUARE_OFF"
    with store.read() as s:  # the ORM reads back the enums the models declare
        from localstore.models import JournalEntry

        rows = s.scalars(select(JournalEntry).order_by(JournalEntry.seq)).all()
    assert [(r.kind, r.state) for r in rows] == [
        (JournalKind.PLACE, JournalState.PENDING),
        (JournalKind.SQUARE_OFF, JournalState.PENDING),
    ]
    with store.read_core() as conn:
        assert [k for k, _ in journal.position_reducers(conn, ("C1", "NSE", "ITC", "MIS"))] == [
            "PLACE",
            "SQUARE_OFF",
        ]


BACKUP_FORBIDDEN = (
    "sqlalchemy.orm",
    "localstore.models",
    "textual",
    "alembic",
    "sync.trading.online_desk",
    "httpx",
    "pydantic",
    "contract.wire",
)


def test_backup_squareoff_command_stays_off_the_orm(tmp_path, monkeypatch):
    """Main killed: `lifeboat --password-stdin squareoff --all --yes --json` logs in offline
    and journals every leg without importing the ORM, the models, Textual, httpx (a
    refused connection is seen by a bare TCP connect) or pydantic (the stored grant is
    verified with the standard library)."""
    from tests.backup_desk import build_template

    # build_template sets these in os.environ; monkeypatch puts the old values back after the test
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "tests.keyring_backend.TestKeyring")
    monkeypatch.setenv("LIFEBOAT_TEST_SCRYPT_N", "1024")
    monkeypatch.setenv("LIFEBOAT_TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    tpl = build_template(tmp_path)
    env = testclock.keep(
        {
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/bin:/bin",
            "LIFEBOAT_HOME": str(tpl.home),
            "LIFEBOAT_BACKEND_URL": "http://127.0.0.1:9",
            "LIFEBOAT_USER": "dealer1",
            "PYTHON_KEYRING_BACKEND": "tests.keyring_backend.TestKeyring",
            "LIFEBOAT_TEST_KEYRING_FILE": str(tpl.keyring_file),
        }
    )
    code = (
        "import sys; sys.argv = ['lifeboat', '--password-stdin', 'squareoff', '--all', '--yes', '--json']\n"
        "from console import cli\n"
        "try:\n    cli.app()\nexcept SystemExit as e:\n    code = e.code\n"
        "print('=' * 20)\nprint('\\n'.join(sorted(sys.modules)))\nsys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        input="demo\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    answer, _, modules = out.stdout.partition("=" * 20)
    res = json.loads(answer)
    assert res["mode"] == "BACKUP" and res["legs"], res
    assert all(leg["outcome"] == "journaled" and leg["client_order_id"] for leg in res["legs"])
    mods = set(modules.split())
    assert "sync.offline" in mods and "sync.trading.desk" in mods  # it really took the backup path
    assert not [m for m in mods if m in BACKUP_FORBIDDEN or m.split(".")[0] == "textual"], sorted(
        m for m in mods if m in BACKUP_FORBIDDEN or m.split(".")[0] == "textual"
    )
    with sqlite3.connect(tpl.home / "lifeboat.db") as con:  # durably journaled and acknowledged
        rows = con.execute("SELECT kind, acknowledged_at FROM journal WHERE kind = 'SQUARE_OFF'").fetchall()
        last = con.execute("SELECT action FROM audit_log ORDER BY id DESC LIMIT 2").fetchall()
    assert len(rows) == len(res["legs"]) and all(at is not None for _, at in rows)
    assert [a for (a,) in last] == ["square_off", "login"]


def test_journal_writes_chain_onto_other_audit_rows_and_verify(store):
    """journal.write takes the audit head from its counter bump (SQLite): the chain
    stays whole when other appenders (ORM and Core) write between its transactions."""
    for i in range(3):
        with store.write() as s:
            audit.append(s, user_id="u", mode="ONLINE", action="orm", payload={"i": i})
        journal.write(
            store,
            [Intent("CANCEL", "C1", "NSE", "ITC", "MIS", target_order_id=f"O{i}")],
            user_id="u",
            mode="BACKUP",
            trading_date=date(2026, 3, 2),
            audit_action="order_cancel",
        )
        with store.write_core() as conn:
            audit.append_core(conn, user_id="u", mode="BACKUP", action="core", payload={"i": i})
        journal.write(
            store,
            [Intent("SQUARE_OFF", "C1", "NSE", f"S{i}{j}", "MIS") for j in range(3)],
            user_id="u",
            mode="BACKUP",
            trading_date=date(2026, 3, 2),
            audit_action="square_off",
        )
    with store.read() as s:
        res = audit.verify(s)
    assert res.ok and res.rows == 12, res


def test_fast_executemany_stores_exactly_what_core_stores(tmp_path):
    """journal_store.insert_many (driver executemany with the columns' own bind processors)
    writes the same bytes as SQLAlchemy's own executemany of the same rows."""
    rows = [
        {
            "created_at": AT,
            "trading_date": date(2026, 3, 2),
            "console_id": "ABC234",
            "user_id": "super1",
            "mode": "BACKUP",
            "kind": kind,
            "client_order_id": f"ABC234-260302-{i:06d}",
            "client_id": "C1",
            "exchange": exch,
            "symbol": "ITC",
            "product": prod,
            "target_order_id": None,
            "target_client_order_id": None,
            "payload": json.dumps({"i": i}),
            "state": "pending",
            "attempts": 0,
            "updated_at": AT,
        }
        for i, (kind, exch, prod) in enumerate(
            [(JournalKind.SQUARE_OFF, "NSE", "MIS"), ("CANCEL", None, None), ("PLACE", "BSE", "CNC")]
        )
    ]
    from contract.wire import Exchange, Product

    rows[0]["exchange"], rows[0]["product"] = Exchange.NSE, Product.MIS  # enums and their values alike
    dumped = []
    for name, how in (
        ("core", lambda c: c.execute(journal_store._INSERT_MANY, rows)),
        ("fast", lambda c: journal_store.insert_many(c, rows)),
    ):
        st = open_store(tmp_path / f"{name}.db")
        try:
            with st.write_core() as conn:
                how(conn)
            with st.read_core() as conn:
                dumped.append(conn.exec_driver_sql("SELECT * FROM journal ORDER BY seq").fetchall())
        finally:
            st.close()
    assert len(dumped[0]) == 3 and dumped[0] == dumped[1]
    from sqlalchemy.exc import StatementError

    st = open_store(tmp_path / "fast.db")
    try:
        # refused as on Core's own path (JournalWriteFailed)
        with pytest.raises(StatementError, match="NYSE"), st.write_core() as conn:
            journal_store.insert_many(conn, [{**rows[2], "client_order_id": "X-1", "exchange": "NYSE"}])
        with st.read_core() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM journal").scalar() == 3
    finally:
        st.close()


def test_leg_as_dict_keeps_every_field_set():
    import dataclasses

    from sync.trading.squareoff import Leg

    for leg in (
        Leg("C1", "NSE", "ITC", "MIS", "SELL", 5),
        Leg("C1", "NSE", "ITC", "MIS", "SELL", 5, "X-1", "rejected", "price band", "O-9"),
    ):
        want = {
            k: v
            for k, v in dataclasses.asdict(leg).items()
            if v is not None or k in ("client_order_id", "outcome")
        }
        assert leg.as_dict() == want


KEY = ("C1", "NSE", "ITC", "MIS")


@pytest.fixture(scope="module")
def reducer_store(tmp_path_factory):
    s = enrolled_for_test(open_store(tmp_path_factory.mktemp("reduced") / "lifeboat.db"))
    yield s
    s.close()


_entry = st.tuples(
    st.sampled_from(["PLACE", "SQUARE_OFF", "CANCEL", "MODIFY"]),
    st.sampled_from(["pending", "sent", "applied", "moot", "held"]),
    st.sampled_from(["BUY", "SELL", None]),
    st.one_of(st.none(), st.integers(1, 5000)),
    st.sampled_from([KEY, ("C1", "NSE", "ITC", "CNC"), ("C2", "NSE", "ITC", "MIS")]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_entry, max_size=12), net=st.integers(-3000, 3000))
def test_reduced_quantity_in_sql_equals_the_entries_summed(reducer_store, entries, net):
    """The SQL sum the backup PLACE check uses (json_extract) gives what summing the
    decoded entries gives, for any mix of kinds, states, sides and positions."""
    with reducer_store.write_core() as conn:
        conn.execute(core_tables.journal.delete())
    intents = []
    for kind, state, side, qty, key in entries:
        payload = {k: v for k, v in (("side", side), ("quantity", qty)) if v is not None}
        intents.append((Intent(kind, *key, payload=payload), state))
    if intents:
        receipts = journal.write(
            reducer_store,
            [i for i, _ in intents],
            user_id="u",
            mode="BACKUP",
            trading_date=date(2026, 3, 2),
            audit_action="t",
        )
        with reducer_store.write_core() as conn:
            for r, (_, state) in zip(receipts, intents, strict=False):
                conn.execute(
                    core_tables.journal.update().where(core_tables.journal.c.seq == r.seq).values(state=state)
                )
    with reducer_store.read_core() as conn:
        want = journal.reduced_by(journal.position_reducers(conn, KEY), net)
        assert journal.position_reduced(conn, KEY, net) == want
