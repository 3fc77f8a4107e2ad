"""Core statements run straight on the DBAPI cursor: the journal's hot path on SQLite.

Why: one backup action (checks, journal row, audit row, acknowledgement) is about
eight statements.  Through ``Connection.execute`` each costs some 40-90 us of
SQLAlchemy bookkeeping here (execution context, events, parameter and result
machinery) against 2-5 us for the same SQL on the sqlite3 cursor, so the
bookkeeping, not SQLite, was most of an action (bench/bench_backup.py, P4).

A ``Prepared`` wraps a Core statement built once.  On its first use with a dialect
it compiles it, and keeps the SQL text, the bound names in order (literal values
such as ``id == 1`` are kept too) and the columns' own bind and result processors
(``TypeEngine.bind_processor`` / ``result_processor``: exact money, aware UTC times,
enums by value), so the stored values and the values read back are exactly those
``Connection.execute`` would give.  It runs on the Connection's own DBAPI
connection, inside the transaction the Connection began (``Store.write_core``), so
commit, rollback and ``BEGIN IMMEDIATE`` are unchanged.

SQLite only: on any other dialect (a shared PostgreSQL store) ``Prepared`` hands
the statement to ``Connection.execute`` and converts nothing itself.  Statements
with expanding ``IN`` parameters are refused at construction: their SQL changes
with the number of values.  Errors are the driver's own (``sqlite3.Error``), which
the journal's callers already catch alongside SQLAlchemy's.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

# namedtuple with column keys known only at run time (mypy types only literal field lists)
_namedtuple: Callable[..., Any] = namedtuple

_Plan = (
    tuple  # (sql, ((name, required, literal, processor) ...), row class or None, ((index, processor) ...))
)


class Prepared:
    """A Core statement compiled once per dialect, run on the DBAPI cursor (SQLite)."""

    __slots__ = ("_plans", "column_keys", "stmt")

    def __init__(self, stmt, column_keys: list[str] | None = None):
        """``column_keys``: for an INSERT/UPDATE without ``.values()``, the columns the
        parameters will name (as ``Connection.execute`` infers from its first dict)."""
        self.stmt = stmt
        self.column_keys = column_keys
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect) -> _Plan:
        plan = self._plans.get(dialect.name)
        if plan is not None:
            return plan
        compiled = self.stmt.compile(dialect=dialect, column_keys=self.column_keys)
        if any(b.expanding for b in compiled.binds.values()):
            raise TypeError("Prepared cannot run a statement with expanding IN parameters")
        if not compiled.positional:
            raise TypeError(f"Prepared needs a positional paramstyle, not {dialect.paramstyle}")
        binds = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            literal = None if bind.required else bind.effective_value
            binds.append((name, bind.required, literal, proc))
        cols = list(getattr(self.stmt, "exported_columns", ()) or ())
        row_cls: Any = None
        procs: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
        if cols:
            row_cls = _namedtuple("Row", [c.key or f"c{i}" for i, c in enumerate(cols)], rename=True)
            procs = tuple(
                (i, p)
                for i, p in enumerate(
                    c.type.dialect_impl(dialect).result_processor(dialect, None) for c in cols
                )
                if p is not None
            )
        plan = self._plans[dialect.name] = (compiled.string, tuple(binds), row_cls, procs)
        return plan

    def _run(self, conn: Connection, params: dict[str, Any]):
        sql, binds, row_cls, procs = self._plan(conn.dialect)
        values = []
        for name, required, literal, proc in binds:
            value = params[name] if required or name in params else literal
            values.append(value if proc is None else proc(value))
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None  # a checked-out connection always holds its DBAPI connection
        cur = dbapi.execute(sql, values)
        return cur, row_cls, procs

    # ------------------------------------------------------------------ results

    def execute(self, conn: Connection, params: dict[str, Any] | None = None) -> None:
        """Run it; nothing is read back."""
        if conn.dialect.name != "sqlite":
            conn.execute(self.stmt, params or {})
            return
        self._run(conn, params or {})

    def all(self, conn: Connection, params: dict[str, Any] | None = None) -> list:
        """Every row, as named tuples with the statement's column keys."""
        if conn.dialect.name != "sqlite":
            return list(conn.execute(self.stmt, params or {}))
        cur, row_cls, procs = self._run(conn, params or {})
        return [_convert(raw, row_cls, procs) for raw in cur.fetchall()]

    def first(self, conn: Connection, params: dict[str, Any] | None = None):
        """The first row (named tuple) or None."""
        if conn.dialect.name != "sqlite":
            return conn.execute(self.stmt, params or {}).first()
        cur, row_cls, procs = self._run(conn, params or {})
        raw = cur.fetchone()
        return None if raw is None else _convert(raw, row_cls, procs)

    def scalar(self, conn: Connection, params: dict[str, Any] | None = None):
        """The first column of the first row, or None."""
        row = self.first(conn, params)
        return None if row is None else row[0]


def _convert(raw: tuple, row_cls, procs: tuple[tuple[int, Callable], ...]):
    if not procs:
        return row_cls._make(raw)
    values = list(raw)
    for i, proc in procs:
        values[i] = proc(values[i])
    return row_cls._make(values)
