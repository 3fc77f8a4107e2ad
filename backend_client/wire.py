"""Wire models of the main backend's REST and WebSocket contract.

One schema, shared by the reference backend (mainsim) and backend_client, so the
two can never drift apart: mainsim's OpenAPI document is generated from these
classes and the client validates every reply against them.

Money is ``Decimal`` in Python (tick-size checks must be exact) and a JSON number
on the wire, as broker APIs do.  Quantities are integers.  Field names follow
../shared/CONTRACT.md and must not be renamed.
"""

from __future__ import annotations

import base64
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

API_PREFIX = "/api/v1"

# A price: exact in Python, a plain JSON number on the wire.
Price = Annotated[
    Decimal,
    PlainSerializer(lambda v: float(v), return_type=float, when_used="json"),
]


class Wire(BaseModel):
    """Base of every wire model: unknown fields are ignored (forward compatible),
    values are validated strictly enough that a wrong type is a protocol error."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


# --------------------------------------------------------------------------- enums
# (backend_client.enums: standard library only, for the backup path; the same classes)

from backend_client.enums import (  # noqa: E402, F401
    OPEN_STATUSES,
    PRODUCTS_BY_EXCHANGE,
    Exchange,
    OrderStatus,
    OrderType,
    Product,
    Role,
    Side,
    Validity,
)


# --------------------------------------------------------------------------- errors


class ErrorDetail(Wire):
    code: str  # machine-readable reason, e.g. "unknown_symbol", "tick_size"
    message: str  # one sentence for a person
    field: str | None = None


class ErrorBody(Wire):
    """Body of every 4xx/5xx reply: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorDetail


# Rejection codes mainsim uses (the client passes them through as Rejected.code).
REJECT_CODES = (
    "unknown_symbol",
    "unknown_client",
    "invalid_quantity",  # <= 0
    "lot_size",  # not a multiple of the lot size
    "freeze_quantity",  # above the exchange's quantity freeze
    "price_band",  # outside the day's circuit band
    "tick_size",  # not a multiple of the tick size
    "product_exchange",  # e.g. CNC on NFO, NRML on NSE
    "price_required",  # LIMIT/SL without price
    "trigger_required",  # SL/SL-M without trigger
    "order_value_limit",  # above the client's max order value
    "exposure_limit",  # above the client's gross exposure limit
    "disclosed_quantity",  # disclosed > quantity, or not allowed
    "not_open",  # modify/cancel of an order that is no longer open
    "invalid_request",  # malformed body (422)
)


# --------------------------------------------------------------------------- health, session, keys


class Health(Wire):
    status: Literal["ok"]
    trading_date: date
    server_time: datetime


class SessionRequest(Wire):
    user_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserInfo(Wire):
    user_id: str
    role: Role
    client_ids: list[str]  # a supervisor's list holds every client


class GrantClaims(Wire):
    """What an offline grant asserts.  Signed by the main system with Ed25519."""

    user_id: str
    role: Role
    client_ids: list[str]
    trading_date: date
    issued_at: datetime
    valid_until: datetime  # end of the trading day (23:59:59 IST of trading_date)
    key_id: str


class OfflineGrant(Wire):
    claims: GrantClaims
    signature: str  # base64 (standard, padded) Ed25519 signature over grant_signing_bytes(claims)


def grant_signing_bytes(claims: GrantClaims | dict[str, Any]) -> bytes:
    """The exact bytes an offline grant's signature covers: canonical JSON of the claims
    (sorted keys, no whitespace, JSON-mode values)."""
    from backend_client.grants import claims_bytes  # one definition, shared with offline login

    return claims_bytes(claims.model_dump(mode="json") if isinstance(claims, GrantClaims) else claims)


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class SessionResponse(Wire):
    access_token: str
    expires_at: datetime
    user: UserInfo
    offline_grant: OfflineGrant


class PublicKey(Wire):
    key_id: str
    algorithm: Literal["Ed25519"]
    public_key: str  # base64 of the raw 32-byte public key


class KeySet(Wire):
    keys: list[PublicKey]


# --------------------------------------------------------------------------- reference data


class Instrument(Wire):
    exchange: Exchange
    symbol: str
    name: str
    instrument_type: Literal["EQ", "FUT"]
    lot_size: int = Field(ge=1)
    tick_size: Price
    last_price: Price
    lower_band: Price  # the day's circuit band: prices outside it are rejected
    upper_band: Price
    freeze_quantity: int = Field(ge=1)  # largest quantity in one order
    previous_close: Price


class Client(Wire):
    client_id: str
    name: str
    dealer_id: str


class ClientLimit(Wire):
    client_id: str
    max_order_value: Price  # value of one order (quantity x price)
    max_gross_exposure: Price  # sum over positions of |net_quantity| x last_price, after the order


# --------------------------------------------------------------------------- positions, orders, trades


class Position(Wire):
    client_id: str
    exchange: Exchange
    symbol: str
    product: Product
    net_quantity: int  # > 0 long, < 0 short, 0 flat
    average_price: Price  # of the open net quantity; 0 when flat
    last_price: Price
    realised_pnl: Price
    mtm: Price  # realised + (last_price - average_price) x net_quantity
    buy_quantity: int
    sell_quantity: int
    updated_at: datetime


class OrderRequest(Wire):
    """Body of ``POST /orders``.  ``client_order_id`` is the idempotency key."""

    client_order_id: str = Field(min_length=1, max_length=64)
    client_id: str = Field(min_length=1, max_length=32)
    exchange: Exchange
    symbol: str = Field(min_length=1, max_length=40)
    side: Side
    quantity: int
    product: Product
    order_type: OrderType
    price: Price | None = None
    trigger_price: Price | None = None
    validity: Validity = Validity.DAY
    disclosed_quantity: int | None = None

    def same_parameters(self, other: "OrderRequest") -> bool:
        """True when two requests with one client_order_id ask for the same order."""
        return self.model_dump(exclude={"client_order_id"}) == other.model_dump(exclude={"client_order_id"})


class OrderModify(Wire):
    """Body of ``PATCH /orders/{order_id}``: only the given fields change."""

    quantity: int | None = None
    price: Price | None = None
    trigger_price: Price | None = None
    order_type: OrderType | None = None
    validity: Validity | None = None
    disclosed_quantity: int | None = None


class Order(Wire):
    order_id: str
    client_order_id: str
    client_id: str
    exchange: Exchange
    symbol: str
    side: Side
    quantity: int
    filled_quantity: int
    average_price: Price  # of the fills; 0 when none
    product: Product
    order_type: OrderType
    price: Price | None
    trigger_price: Price | None
    validity: Validity
    disclosed_quantity: int | None
    status: OrderStatus
    status_reason: str | None = None
    placed_by: str
    created_at: datetime
    updated_at: datetime


class Trade(Wire):
    trade_id: str
    order_id: str
    client_order_id: str
    client_id: str
    exchange: Exchange
    symbol: str
    side: Side
    product: Product
    quantity: int
    price: Price
    traded_at: datetime


class BodSnapshot(Wire):
    """Start-of-day snapshot of a user's scope.  ``seq`` is the event sequence the
    snapshot is consistent with: a mirror resumes the stream with ``?since=seq``."""

    trading_date: date
    generated_at: datetime
    seq: int
    user: UserInfo
    instruments: list[Instrument]
    clients: list[Client]
    limits: list[ClientLimit]
    positions: list[Position]
    open_orders: list[Order]
    trades: list[Trade]


# --------------------------------------------------------------------------- faults (mainsim --allow-faults)


class FaultMode(str, Enum):
    NONE = "none"  # serve normally
    REFUSE = "refuse"  # stop listening: new connections are refused, open ones reset
    HANG = "hang"  # accept and never answer; open connections go silent
    ERROR = "error"  # answer every request with 503; open streams closed


class FaultRequest(Wire):
    mode: FaultMode
    duration_s: float | None = Field(default=None, gt=0, le=3600)  # recover by itself after this


class FaultState(Wire):
    mode: FaultMode
    until: datetime | None = None


# --------------------------------------------------------------------------- stream
#
# Every message is a JSON object with ``type`` and ``seq``.  ``seq`` of order,
# trade and position events is the persisted, global event sequence (a dealer's
# stream only carries its own clients' events, so it has holes by design).  On
# hello, heartbeat and tick, ``seq`` is the newest event sequence at send time.
# A client that resumes with ``?since=N`` gets every retained event after N in
# its scope, then live ones; if N is older than what the server retains (or
# newer than anything it knows), the server sends ``resnapshot`` instead and the
# client must take a fresh snapshot (``GET /bod``) and resume from its ``seq``.


class HelloMsg(Wire):
    type: Literal["hello"]
    seq: int
    server_time: datetime
    trading_date: date
    heartbeat_ms: int
    user_id: str


class HeartbeatMsg(Wire):
    type: Literal["heartbeat"]
    seq: int
    server_time: datetime


class Tick(Wire):
    exchange: Exchange
    symbol: str
    last_price: Price


class TickMsg(Wire):
    type: Literal["tick"]
    seq: int
    ticks: list[Tick]
    server_time: datetime


class OrderEvent(Wire):
    type: Literal["order"]
    seq: int
    data: Order


class TradeEvent(Wire):
    type: Literal["trade"]
    seq: int
    data: Trade


class PositionEvent(Wire):
    type: Literal["position"]
    seq: int
    data: Position


class ResnapshotMsg(Wire):
    type: Literal["resnapshot"]
    seq: int  # the server's newest event sequence
    reason: str


StreamMessage = Annotated[
    Union[HelloMsg, HeartbeatMsg, TickMsg, OrderEvent, TradeEvent, PositionEvent, ResnapshotMsg],
    Field(discriminator="type"),
]

EVENT_TYPES = frozenset({"order", "trade", "position"})
