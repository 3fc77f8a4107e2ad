"""Local store: migrated schema, pragmas, write locking, identity, paths, Money.

Real SQLite files in tmp dirs; nothing mocked."""

from __future__ import annotations

import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from localstore import audit
from localstore.db import HEAD_REVISION, open_store
from localstore.models import (
    Base,
    ClientLimitRow,
    JournalEntry,
    JournalKind,
    JournalState,
    Money,
    SyncState,
)
from localstore.paths import data_dir, store_path


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "lifeboat.db")
    yield s
    s.close()


def test_migrated_schema_equals_models(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
        revision = ctx.get_current_revision()
    assert diff == []
    assert revision == HEAD_REVISION


def test_store_at_an_older_revision_is_migrated_keeping_its_data(tmp_path):
    """A store written by an earlier Lifeboat (revision 0001) is upgraded in place at open."""
    from alembic import command

    from localstore.db import _alembic_config

    path = tmp_path / "old.db"
    s = open_store(path)
    with s.write() as session:
        audit.append(session, user_id="dealer1", mode="ONLINE", action="login", payload={"how": "online"})
    console_id = s.console_id
    with s.engine.begin() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        assert "console_state" not in inspect(conn).get_table_names()
    s.close()
    s = open_store(path)
    try:
        with s.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
            assert "console_state" in inspect(conn).get_table_names()
        assert s.console_id == console_id
        with s.read() as session:
            assert audit.verify(session).ok and audit.verify(session).rows == 1
    finally:
        s.close()


def test_pragmas_in_effect_on_pooled_connections(store):
    # two connections checked out at once: both came through the connect hook
    with store.engine.connect() as a, store.engine.connect() as b:
        for conn in (a, b):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_foreign_keys_enforced(store):
    with pytest.raises(IntegrityError), store.write() as s:
        s.add(ClientLimitRow(client_id="NOPE", max_order_value=Decimal(1), max_gross_exposure=Decimal(1)))


def test_journal_state_check_constraint_in_database(store):
    # bypass the ORM's enum validation: the CHECK in the database must refuse it too
    with pytest.raises(IntegrityError), store.write() as s:
        s.execute(
            text(
                "INSERT INTO journal (created_at, trading_date, console_id, user_id, mode, kind,"
                " client_order_id, client_id, payload, state, attempts, updated_at)"
                " VALUES ('2026-01-01 00:00:00', '2026-01-01', 'C', 'u', 'BACKUP', 'PLACE',"
                " 'x1', 'c1', '{}', 'bogus', 0, '2026-01-01 00:00:00')"
            )
        )


def test_journal_round_trip_with_enums(store):
    with store.write() as s:
        s.add(
            JournalEntry(
                trading_date=datetime(2026, 1, 2).date(),
                console_id=store.console_id,
                user_id="dealer1",
                mode="BACKUP",
                kind=JournalKind.SQUARE_OFF,
                client_order_id="LB-X-1",
                client_id="C1",
                payload='{"flatten": true}',
            )
        )
    with store.read() as s:
        row = s.scalars(select(JournalEntry)).one()
    assert row.state is JournalState.PENDING and row.kind is JournalKind.SQUARE_OFF
    assert row.seq == 1 and row.attempts == 0
    assert row.created_at.tzinfo is not None


def test_begin_immediate_read_then_write_from_two_threads(store):
    """Each thread reads the watermark-free counter, waits, then writes it + 1.  With
    deferred transactions one would fail with SQLITE_BUSY_SNAPSHOT ('database is
    locked'); with BEGIN IMMEDIATE the second waits and both commit, serially."""
    with store.write() as s:
        s.get(SyncState, 1).bod_seq = 0
    errors: list[BaseException] = []
    inside = threading.Barrier(2, timeout=10)

    def bump() -> None:
        try:
            inside.wait()
            with store.write() as s:
                row = s.get(SyncState, 1)
                value = row.bod_seq
                time.sleep(0.05)  # widen the race window; not a timing assertion
                row.bod_seq = value + 1
        except BaseException as exc:  # noqa: BLE001  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with store.read() as s:
        assert s.get(SyncState, 1).bod_seq == 2  # no lost update


def test_write_rolls_back_on_error(store):
    with pytest.raises(RuntimeError), store.write() as s:
        s.get(SyncState, 1).bod_seq = 99
        raise RuntimeError("boom")
    with store.read() as s:
        assert s.get(SyncState, 1).bod_seq is None


def test_commit_visible_to_a_second_store_on_the_same_file(tmp_path):
    a = open_store(tmp_path / "s.db")
    b = open_store(tmp_path / "s.db")
    try:
        assert a.console_id == b.console_id
        with a.write() as s:
            s.get(SyncState, 1).last_event_seq = 42
        with b.read() as s:
            assert s.get(SyncState, 1).last_event_seq == 42
    finally:
        a.close()
        b.close()


def test_console_id_is_stable_across_reopen_and_distinct_per_store(tmp_path):
    first = open_store(tmp_path / "a.db")
    cid = first.console_id
    first.close()
    again = open_store(tmp_path / "a.db")
    other = open_store(tmp_path / "b.db")
    try:
        assert again.console_id == cid
        assert len(cid) == 6 and cid.isalnum() and cid.isupper()
        assert other.console_id != cid  # 31**6 ids: a clash here would be a bug, not luck
    finally:
        again.close()
        other.close()


def test_create_false_refuses_missing_store(tmp_path):
    from localstore.errors import StoreError

    with pytest.raises(StoreError, match="no local store"):
        open_store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_url_target_works(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'u.db'}")
    try:
        assert s.path == (tmp_path / "u.db").resolve()
        assert (tmp_path / "u.db").stat().st_size > 0
    finally:
        s.close()


def test_paths_home_env_and_mode(tmp_path, monkeypatch):
    home = tmp_path / "h" / "lb"
    assert data_dir(home) == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    monkeypatch.setenv("LIFEBOAT_HOME", str(tmp_path / "envhome"))
    assert store_path(None) == tmp_path / "envhome" / "lifeboat.db"
    assert (tmp_path / "envhome").is_dir()
    # --home beats the environment
    assert store_path(home) == home / "lifeboat.db"
    monkeypatch.delenv("LIFEBOAT_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir(None) == tmp_path / "xdg" / "lifeboat"


def test_store_file_is_private(tmp_path):
    s = open_store(tmp_path / "p.db")
    s.close()
    assert stat.S_IMODE(os.stat(tmp_path / "p.db").st_mode) == 0o600


# --------------------------------------------------------------------------- Money and times

_money_table = Table("money_probe", MetaData(), Column("id", Integer, primary_key=True), Column("v", Money()))


@pytest.fixture(scope="module")
def money_engine(tmp_path_factory):
    s = open_store(tmp_path_factory.mktemp("money") / "m.db")
    _money_table.create(s.engine)
    yield s.engine
    s.close()


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(
        min_value=Decimal("-922337203685477.5807"),
        max_value=Decimal("922337203685477.5807"),
        places=4,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_money_round_trips_exactly(money_engine, value):
    with money_engine.begin() as conn:
        conn.execute(_money_table.delete())
        conn.execute(insert(_money_table).values(id=1, v=value))
        back = conn.execute(select(_money_table.c.v)).scalar_one()
        raw = conn.execute(text("SELECT v FROM money_probe")).scalar_one()
    assert isinstance(back, Decimal)
    assert back == value
    assert raw == int(value * 10_000)  # stored as an exact integer of 1/10,000 units


def test_money_refuses_what_it_cannot_store_exactly(money_engine):
    for bad in (Decimal("0.00001"), Decimal("NaN"), Decimal("1e30"), "abc"):
        with pytest.raises(StatementError), money_engine.begin() as conn:
            conn.execute(insert(_money_table).values(id=2, v=bad))
    # rounding is opt-in for derived figures (average price, MTM)
    assert Money(exact=False).process_bind_param(Decimal("100.33333"), None) == 1003333
    assert Money(exact=False).process_bind_param(Decimal("0.00005"), None) == 0  # half-even


def test_datetimes_are_aware_utc_and_naive_refused(store):
    ist = timezone(timedelta(hours=5, minutes=30))
    with store.write() as s:
        s.get(SyncState, 1).bod_at = datetime(2026, 3, 2, 9, 0, tzinfo=ist)
    with store.read() as s:
        got = s.get(SyncState, 1).bod_at
    assert got == datetime(2026, 3, 2, 3, 30, tzinfo=UTC) and got.tzinfo is not None
    with pytest.raises(StatementError, match="naive"), store.write() as s:
        s.get(SyncState, 1).bod_at = datetime(2026, 3, 2, 9, 0)


def test_localstore_never_imports_textual_and_paths_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, localstore.paths; light = 'sqlalchemy' not in sys.modules; "
        "import localstore.db, localstore.audit, localstore.credentials, localstore.secrets, localstore.models; "
        "print(light, 'textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_known_revisions_match_the_migrations_directory():
    from alembic.script import ScriptDirectory

    from localstore import db

    script = ScriptDirectory.from_config(db._alembic_config())
    assert tuple(reversed([s.revision for s in script.walk_revisions()])) == db.KNOWN_REVISIONS
    assert script.get_current_head() == db.HEAD_REVISION
