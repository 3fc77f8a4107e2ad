"""Reconciliation reports as stored (sync.reconcile builds them; this module keeps them):
one JSON document per report, numbered."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from localstore import core_tables as t
from localstore.db import Store

_R = t.reconciliation_report


def save(store: Store, created_at: datetime, json_text: str) -> int:
    """Store a report (durably); its number."""
    with store.write_core() as conn:
        return conn.execute(
            insert(_R).values(created_at=created_at, json=json_text).returning(_R.c.id)
        ).scalar_one()


def last(store: Store) -> tuple[int, str] | None:
    """(number, JSON text) of the newest report, or None."""
    with store.read_core() as conn:
        row = conn.execute(select(_R.c.id, _R.c.json).order_by(_R.c.id.desc()).limit(1)).first()
    return None if row is None else (row.id, row.json)
