"""localstore.prepared: Core statements run on the sqlite3 cursor give the same stored
values and the same values read back as ``Connection.execute`` (exact money, aware UTC
times, enums by value, dates, booleans, literal binds), run inside the caller's
transaction, and refuse what they cannot prepare.  Real SQLite files in tmp dirs."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, insert, select, update

from contract.wire import Exchange, Product
from localstore import core_tables as t
from localstore.db import open_store
from localstore.prepared import Prepared

IST = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def store(tmp_path):
    s = open_store(tmp_path / "lifeboat.db")
    yield s
    s.close()


def _journal_row(coid: str, **over) -> dict:
    row = {
        "created_at": datetime(2026, 3, 2, 9, 15, 1, 250001, tzinfo=IST),
        "trading_date": date(2026, 3, 2),
        "console_id": "C0NS0L",
        "user_id": "dealer1",
        "mode": "BACKUP",
        "kind": "PLACE",
        "client_order_id": coid,
        "client_id": "C1001",
        "exchange": Exchange.NSE,
        "symbol": "ITC",
        "product": Product.MIS,
        "target_order_id": None,
        "target_client_order_id": None,
        "payload": '{"quantity": 1}',
        "state": "pending",
        "attempts": 0,
        "updated_at": datetime(2026, 3, 2, 3, 45, tzinfo=UTC),
    }
    row.update(over)
    return row


def test_insert_and_select_store_and_read_exactly_what_core_does(store, tmp_path):
    keys = list(_journal_row("x"))
    fast = Prepared(insert(t.journal).returning(t.journal.c.seq), column_keys=keys)
    with store.write_core() as conn:
        seq_fast = fast.scalar(conn, _journal_row("FAST-1"))
        seq_core = conn.execute(
            insert(t.journal).returning(t.journal.c.seq), _journal_row("CORE-1")
        ).scalar_one()
    assert seq_core == seq_fast + 1
    with sqlite3.connect(tmp_path / "lifeboat.db") as raw:  # the bytes on disk are the same
        stored = raw.execute("SELECT * FROM journal ORDER BY seq").fetchall()
    assert [r[1:7] + r[8:] for r in stored[:1]] == [r[1:7] + r[8:] for r in stored[1:]]
    assert stored[0][1] == "2026-03-02 03:45:01.250001"  # IST converted to UTC, as the model stores it

    q = select(t.journal).where(t.journal.c.client_order_id == bindparam("c"))
    with store.read_core() as conn:
        got = Prepared(q).first(conn, {"c": "FAST-1"})
        want = conn.execute(q, {"c": "FAST-1"}).first()
    assert tuple(got) == tuple(want)
    assert got.exchange is Exchange.NSE and got.product is Product.MIS
    assert got.created_at == datetime(2026, 3, 2, 3, 45, 1, 250001, tzinfo=UTC)
    assert got.created_at.tzinfo is not None and got.trading_date == date(2026, 3, 2)


def test_money_and_booleans_round_trip_with_literal_binds(store, tmp_path):
    with sqlite3.connect(tmp_path / "lifeboat.db") as raw:  # money is stored as 1/10000 units
        cols = [r[1] for r in raw.execute("PRAGMA table_info(client_limits)")]
        values = dict.fromkeys(cols, 0) | {"client_id": "C9", "max_order_value": 123456789}
        raw.execute(
            f"INSERT INTO client_limits ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
            [values[c] for c in cols],
        )
    with store.write_core() as conn:
        conn.execute(update(t.policy).where(t.policy.c.id == 1).values(allow_new_exposure=True))
    q = Prepared(
        select(t.client_limits.c.max_order_value, t.policy.c.allow_new_exposure).where(
            t.client_limits.c.client_id == bindparam("c"), t.policy.c.id == 1
        )
    )  # literal 1 kept
    with store.read_core() as conn:
        row = q.first(conn, {"c": "C9"})
        assert q.first(conn, {"c": "nobody"}) is None and q.scalar(conn, {"c": "nobody"}) is None
    assert row.max_order_value == Decimal("12345.6789") and isinstance(row.max_order_value, Decimal)
    assert row.allow_new_exposure is True


def test_runs_inside_the_callers_transaction(store, tmp_path):
    bump = Prepared(update(t.policy).where(t.policy.c.id == 1).values(killswitch=bindparam("k")))
    with pytest.raises(ZeroDivisionError), store.write_core() as conn:
        bump.execute(conn, {"k": True})
        _ = 1 / 0  # the block fails: the statement is rolled back with the rest
    with sqlite3.connect(tmp_path / "lifeboat.db") as raw:
        assert raw.execute("SELECT killswitch FROM policy").fetchone() == (0,)
    with store.write_core() as conn:
        bump.execute(conn, {"k": True})
    with sqlite3.connect(tmp_path / "lifeboat.db") as raw:
        assert raw.execute("SELECT killswitch FROM policy").fetchone() == (1,)


def test_a_missing_parameter_and_a_bad_value_are_errors(store):
    q = Prepared(select(t.journal.c.seq).where(t.journal.c.exchange == bindparam("e")))
    with store.read_core() as conn:
        with pytest.raises(KeyError):
            q.all(conn, {})
        with pytest.raises(LookupError):  # the Enum column's own processor refuses it
            q.all(conn, {"e": "LSE"})
        assert q.all(conn, {"e": Exchange.BSE}) == []


def test_expanding_in_lists_are_refused(store):
    q = Prepared(select(t.journal.c.seq).where(t.journal.c.state.in_(["pending", "sent"])))
    with store.read_core() as conn, pytest.raises(TypeError, match="expanding"):
        q.all(conn)
