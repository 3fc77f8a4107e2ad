"""The risk rules' rows (sync.rms): which rule ran on which day, each client's MTM state."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from localstore import core_tables as t
from localstore.db import Store

_RUNS = t.rms_runs
_CLIENTS = t.rms_client_state


def run_done(conn: Connection, trading_date: date, rule: str, scope: str) -> bool:
    return (
        conn.execute(
            select(_RUNS.c.at).where(
                _RUNS.c.trading_date == trading_date, _RUNS.c.rule == rule, _RUNS.c.scope == scope
            )
        ).first()
        is not None
    )


def record_run(
    conn: Connection,
    *,
    trading_date: date,
    rule: str,
    scope: str,
    at: datetime,
    mode: str,
    entries: int,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        _RUNS.insert().values(
            trading_date=trading_date,
            rule=rule,
            scope=scope,
            at=at,
            mode=mode,
            entries=entries,
            detail=json.dumps(detail, sort_keys=True, default=str),
        )
    )


def runs(store: Store, trading_date: date) -> list[dict[str, Any]]:
    with store.read_core() as conn:
        rows = conn.execute(
            select(_RUNS).where(_RUNS.c.trading_date == trading_date).order_by(_RUNS.c.at)
        ).all()
    return [
        {
            "rule": r.rule,
            "scope": r.scope,
            "at": r.at,
            "mode": r.mode,
            "entries": r.entries,
            "detail": json.loads(r.detail),
        }
        for r in rows
    ]


def client_states(store: Store, trading_date: date) -> dict[str, Any]:
    with store.read_core() as conn:
        rows = conn.execute(select(_CLIENTS).where(_CLIENTS.c.trading_date == trading_date)).all()
    return {r.client_id: r for r in rows}


def client_state(conn: Connection, trading_date: date, client_id: str) -> Any:
    return conn.execute(
        select(_CLIENTS).where(_CLIENTS.c.trading_date == trading_date, _CLIENTS.c.client_id == client_id)
    ).first()


def put_client_state(
    conn: Connection,
    *,
    trading_date: date,
    client_id: str,
    alert_level: int,
    squareoff_mode: bool,
    mtm: Decimal | None,
    max_mtm_loss: Decimal | None,
    at: datetime,
) -> None:
    values = dict(
        alert_level=alert_level,
        squareoff_mode=squareoff_mode,
        mtm=mtm,
        max_mtm_loss=max_mtm_loss,
        updated_at=at,
    )
    updated = conn.execute(
        _CLIENTS.update()
        .where(_CLIENTS.c.trading_date == trading_date, _CLIENTS.c.client_id == client_id)
        .values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(_CLIENTS.insert().values(trading_date=trading_date, client_id=client_id, **values))


def squareoff_mode_clients(conn: Connection, trading_date: date) -> set[str]:
    """Clients in square-off mode today (reduce-only after an MTM-loss breach)."""
    rows = conn.execute(
        select(_CLIENTS.c.client_id).where(
            _CLIENTS.c.trading_date == trading_date, _CLIENTS.c.squareoff_mode.is_(True)
        )
    )
    return {r.client_id for r in rows}


def existing_client_order_ids(conn: Connection, ids: list[str]) -> set[str]:
    """Which of ``ids`` the journal already holds (a rule's deterministic ids, journaled once)."""
    if not ids:
        return set()
    j = t.journal
    return {r[0] for r in conn.execute(select(j.c.client_order_id).where(j.c.client_order_id.in_(ids)))}


def client_book(store: Store) -> list[Any]:
    """Per client of the local book: realised and unrealised P&L summed over its positions,
    the newest position update, and its MTM-loss limit (None: main set none)."""
    from sqlalchemy import func

    p, lim, c = t.positions, t.client_limits, t.clients
    q = (
        select(
            c.c.client_id,
            func.coalesce(func.sum(p.c.realised_pnl), 0).label("realised"),
            func.coalesce(func.sum(p.c.mtm), 0).label("unrealised"),
            func.max(p.c.updated_at).label("updated_at"),
            lim.c.max_mtm_loss,
        )
        .select_from(
            c.outerjoin(p, p.c.client_id == c.c.client_id).outerjoin(lim, lim.c.client_id == c.c.client_id)
        )
        .group_by(c.c.client_id, lim.c.max_mtm_loss)
        .order_by(c.c.client_id)
    )
    with store.read_core() as conn:
        return list(conn.execute(q))


def mis_counts(store: Store, exchange: str) -> dict[str, int]:
    """Open MIS orders and non-flat MIS positions of one exchange segment, in the local book."""
    from sqlalchemy import func

    from contract.enums import OPEN_STATUSES, Exchange, Product

    o, p = t.orders, t.positions
    with store.read_core() as conn:
        orders = conn.scalar(
            select(func.count()).where(
                o.c.product == Product.MIS,
                o.c.exchange == Exchange(exchange),
                o.c.status.in_(sorted(OPEN_STATUSES)),
            )
        )
        positions = conn.scalar(
            select(func.count()).where(
                p.c.product == Product.MIS, p.c.exchange == Exchange(exchange), p.c.net_quantity != 0
            )
        )
    return {"orders": int(orders or 0), "positions": int(positions or 0)}
