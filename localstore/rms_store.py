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


def net_quantity(store: Store, client_id: str, exchange: str, symbol: str, product: str) -> int:
    """The local book's net for one position (0 when flat or unknown)."""
    from contract.enums import Exchange, Product

    p = t.positions
    with store.read_core() as conn:
        net = conn.scalar(
            select(p.c.net_quantity).where(
                p.c.client_id == client_id,
                p.c.exchange == Exchange(exchange),
                p.c.symbol == symbol,
                p.c.product == Product(product),
            )
        )
    return int(net or 0)


# --------------------------------------------------------------------------- MTM-loss limits (sync.rms.limits)


def position_marks(store: Store) -> tuple[list[Any], datetime | None]:
    """Every position of the local book as the book marks it (client_id, exchange, symbol,
    product, net_quantity, mtm: realised + unrealised at its last price, updated_at), and when
    the BOD that marked the book's positions was taken (None: no BOD): a position's price is
    as fresh as the later of the two, since the mirror applies fills, not ticks."""
    p, s = t.positions, t.sync_state
    with store.read_core() as conn:
        rows = list(
            conn.execute(
                select(
                    p.c.client_id,
                    p.c.exchange,
                    p.c.symbol,
                    p.c.product,
                    p.c.net_quantity,
                    p.c.mtm,
                    p.c.updated_at,
                )
            )
        )
        bod_at = conn.scalar(select(s.c.bod_at).where(s.c.id == 1))
    return rows, bod_at


def mtm_limits(store: Store) -> dict[str, Decimal | None]:
    """Every client of the local book and its MTM-loss limit from the BOD (None: main set none)."""
    c, lim = t.clients, t.client_limits
    with store.read_core() as conn:
        rows = conn.execute(
            select(c.c.client_id, lim.c.max_mtm_loss).select_from(
                c.outerjoin(lim, lim.c.client_id == c.c.client_id)
            )
        )
        return {r.client_id: r.max_mtm_loss for r in rows}


def squareoff_mode_of(conn: Connection, trading_date: date, client_id: str) -> Any:
    """The client's state row when it is in square-off mode today (its ``mtm`` and
    ``max_mtm_loss`` as the breach recorded them), else None: the desks' reduce-only check."""
    return conn.execute(
        select(_CLIENTS.c.client_id, _CLIENTS.c.mtm, _CLIENTS.c.max_mtm_loss).where(
            _CLIENTS.c.trading_date == trading_date,
            _CLIENTS.c.client_id == client_id,
            _CLIENTS.c.squareoff_mode.is_(True),
        )
    ).first()


def unfinished_with_prefix(store: Store, prefix: str) -> int:
    """Journal entries still to send whose client_order_id starts with ``prefix`` (a rule's day)."""
    from sqlalchemy import func

    from localstore.journal_states import UNFINISHED_STATES

    j = t.journal
    with store.read_core() as conn:
        return int(
            conn.scalar(
                select(func.count()).where(
                    j.c.client_order_id.startswith(prefix, autoescape=True), j.c.state.in_(UNFINISHED_STATES)
                )
            )
            or 0
        )


def instrument_prices(store: Store, exchange: str, symbol: str) -> Any:
    """(last_price, tick_size, lower_band, upper_band) of an instrument of the local book, or None."""
    from contract.enums import Exchange

    i = t.instruments
    try:
        exch = Exchange(exchange)
    except ValueError:
        return None
    with store.read_core() as conn:
        return conn.execute(
            select(i.c.last_price, i.c.tick_size, i.c.lower_band, i.c.upper_band).where(
                i.c.exchange == exch, i.c.symbol == symbol
            )
        ).first()
