"""What the backup desk's checks read from the local book, and the kill switch it sets
(sync.trading.desk decides; this module holds the SQL).

Why Core statements on the caller's Connection: every check runs inside the journal's
write transaction (BEGIN IMMEDIATE: nobody can change the book between the check and
the journal row), and an ORM get costs about a millisecond here on every action.  The
statement a PLACE runs (``place_facts``) is built once and run on the sqlite3 cursor
(localstore.prepared).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, String, and_, bindparam, select, type_coerce, update

from contract.enums import OPEN_STATUSES, Exchange, Product
from localstore import core_tables as t
from localstore.db import Store
from localstore.prepared import Prepared

if TYPE_CHECKING:  # the ORM is not imported on the fast paths (tests/integration/test_perf_paths.py)
    from sqlalchemy.orm import Session

_CLIENTS = t.clients
_INSTRUMENTS = t.instruments
_POSITIONS = t.positions
_LIMITS = t.client_limits
_POLICY = t.policy
_ORDERS = t.orders
_INSTRUMENT_COLS = tuple(
    _INSTRUMENTS.c[n]
    for n in (
        "exchange",
        "symbol",
        "lot_size",
        "tick_size",
        "last_price",
        "lower_band",
        "upper_band",
        "freeze_quantity",
    )
)
_ORDER_COLS = tuple(
    _ORDERS.c[n]
    for n in (
        "order_id",
        "client_order_id",
        "client_id",
        "exchange",
        "symbol",
        "product",
        "side",
        "quantity",
        "filled_quantity",
        "status",
        "order_type",
        "price",
        "trigger_price",
        "validity",
        "disclosed_quantity",
    )
)
_FACTS = Prepared(
    select(
        *_INSTRUMENT_COLS,
        _CLIENTS.c.client_id.label("known_client"),
        _LIMITS.c.max_order_value,
        _POSITIONS.c.net_quantity,
        _POLICY.c.allow_new_exposure,
        _POLICY.c.killswitch,
    )
    .select_from(
        _POLICY.outerjoin(_CLIENTS, _CLIENTS.c.client_id == bindparam("f_client"))
        .outerjoin(_LIMITS, _LIMITS.c.client_id == bindparam("f_client"))
        .outerjoin(
            _INSTRUMENTS,
            and_(
                _INSTRUMENTS.c.exchange == bindparam("f_exchange"),
                _INSTRUMENTS.c.symbol == bindparam("f_symbol"),
            ),
        )
        .outerjoin(
            _POSITIONS,
            and_(
                _POSITIONS.c.client_id == bindparam("f_client"),
                _POSITIONS.c.exchange == bindparam("f_exchange"),
                _POSITIONS.c.symbol == bindparam("f_symbol"),
                _POSITIONS.c.product == bindparam("f_product"),
            ),
        )
    )
    .where(_POLICY.c.id == 1)
)  # built and compiled once, run on the cursor (localstore.prepared): it runs on every PLACE
# exchange and product as their stored strings (what a square-off leg holds): no enum round trip per row
_OPEN_POSITIONS_STMT = select(
    _POSITIONS.c.client_id,
    type_coerce(_POSITIONS.c.exchange, String).label("exchange"),
    _POSITIONS.c.symbol,
    type_coerce(_POSITIONS.c.product, String).label("product"),
    _POSITIONS.c.net_quantity,
).where(_POSITIONS.c.net_quantity != 0)
_OPEN_POSITIONS = Prepared(_OPEN_POSITIONS_STMT)  # a whole book: 1,000 rows and more
_OPEN_POSITIONS_OF = Prepared(_OPEN_POSITIONS_STMT.where(_POSITIONS.c.client_id == bindparam("p_client")))


# --------------------------------------------------------------------------- clients, instruments


def client_known(conn: Connection, client_id: str) -> bool:
    return conn.scalar(select(_CLIENTS.c.client_id).where(_CLIENTS.c.client_id == client_id)) is not None


def client_ids(conn: Connection) -> list[str]:
    return list(conn.scalars(select(_CLIENTS.c.client_id)))


def symbols(conn: Connection, exchange: Exchange | None = None) -> list[str]:
    """The instruments' symbols (of one exchange, or all)."""
    q = select(_INSTRUMENTS.c.symbol)
    if exchange is not None:
        q = q.where(_INSTRUMENTS.c.exchange == exchange)
    return list(conn.scalars(q))


def symbol_known(conn: Connection, symbol: str) -> bool:
    """An instrument with ``symbol`` exists on some exchange."""
    return (
        conn.scalars(select(_INSTRUMENTS.c.symbol).where(_INSTRUMENTS.c.symbol == symbol)).first() is not None
    )


def instrument(conn: Connection, exchange: Exchange, symbol: str) -> Any:
    """The instrument's reference data (a row with InstrumentRow's attribute names), or None."""
    return conn.execute(
        select(*_INSTRUMENT_COLS).where(_INSTRUMENTS.c.exchange == exchange, _INSTRUMENTS.c.symbol == symbol)
    ).first()


def instrument_limits(conn: Connection) -> list[Any]:
    """(exchange, symbol, freeze_quantity, lot_size) of every instrument."""
    i = _INSTRUMENTS.c
    return list(conn.execute(select(i.exchange, i.symbol, i.freeze_quantity, i.lot_size)))


# --------------------------------------------------------------------------- positions, facts


def net_quantity(conn: Connection, client_id: str, exchange: str, symbol: str, product: str) -> int:
    net = conn.scalar(
        select(_POSITIONS.c.net_quantity).where(
            _POSITIONS.c.client_id == client_id,
            _POSITIONS.c.exchange == Exchange(exchange),
            _POSITIONS.c.symbol == symbol,
            _POSITIONS.c.product == Product(product),
        )
    )
    return net or 0


def place_facts(
    conn: Connection, client_id: str, exchange: Exchange, symbol: str, product: Product | None
) -> Any:
    """Everything a PLACE check reads from the book, in ONE statement: the instrument's
    columns (None when unknown), ``known_client`` (None when unknown), the client's
    ``max_order_value``, the position's ``net_quantity`` and the policy.  None only
    without a policy row."""
    return _FACTS.first(
        conn, {"f_client": client_id, "f_exchange": exchange, "f_symbol": symbol, "f_product": product}
    )


def open_positions(conn: Connection, client_id: str | None = None) -> Sequence[Any]:
    """Non-flat positions (client_id, exchange, symbol, product as stored strings,
    net_quantity), of one client or all."""
    if client_id:
        return _OPEN_POSITIONS_OF.all(conn, {"p_client": client_id})
    return _OPEN_POSITIONS.all(conn)


# --------------------------------------------------------------------------- orders, policy


def order(conn: Connection, *, order_id: str | None = None, client_order_id: str | None = None) -> Any:
    """The mirror's order with ``order_id`` (else with ``client_order_id``), or None."""
    if order_id:
        return conn.execute(select(*_ORDER_COLS).where(_ORDERS.c.order_id == order_id)).first()
    if client_order_id:
        return conn.execute(select(*_ORDER_COLS).where(_ORDERS.c.client_order_id == client_order_id)).first()
    return None


def open_orders(conn: Connection, client_id: str | None = None) -> list[Any]:
    """The mirror's open orders (of one client or all), oldest first."""
    q = (
        select(*_ORDER_COLS)
        .where(_ORDERS.c.status.in_(sorted(OPEN_STATUSES)))
        .order_by(_ORDERS.c.created_at, _ORDERS.c.order_id)
    )
    if client_id:
        q = q.where(_ORDERS.c.client_id == client_id)
    return list(conn.execute(q))


def killswitch(store: Store) -> bool:
    """The kill switch is on (the policy row)."""
    with store.read_core() as conn:
        return bool(conn.execute(select(_POLICY.c.killswitch).where(_POLICY.c.id == 1)).scalar_one())


def set_killswitch(conn: Connection | Session, *, by: str, at: datetime, on: bool = True) -> None:
    """Kill switch on (or off) in the policy row, in the caller's transaction."""
    conn.execute(update(_POLICY).where(_POLICY.c.id == 1).values(killswitch=on, updated_by=by, updated_at=at))
