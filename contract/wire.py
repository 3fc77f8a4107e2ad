"""Wire models of the main backend's REST and WebSocket contract.

One schema, shared by the reference backend (mainsim) and backend_client, so the
two can never drift apart: mainsim's OpenAPI document is generated from these
classes and the client validates every reply against them.

Money is ``Decimal`` in Python (tick-size checks must be exact) and a JSON number
on the wire, as broker APIs do.  Quantities are integers, in request bodies
strictly (``StrictInt``): pydantic's lax mode would read ``true`` as 1, ``false``
as 0 and ``"5"`` or ``5.0`` as 5, none of which is a JSON integer.  Field names
follow ../shared/CONTRACT.md and must not be renamed.
"""

from __future__ import annotations

import base64
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictFloat,
    StrictInt,
    StringConstraints,
    model_validator,
)

from contract.limits import MAX_MONEY, MAX_QUANTITY, MAX_SEQ

API_PREFIX = "/api/v1"

_AS_FLOAT = PlainSerializer(lambda v: float(v), return_type=float, when_used="json")

# A price: exact in Python, a plain JSON number on the wire.  (Requests: mainsim answers
# a bad one with its own reject code, so it is not bounded here.)
Price = Annotated[Decimal, _AS_FLOAT]


# --------------------------------------------------------------------------- what a reply may hold
#
# The console stores what main sends (BOD, the live mirror, the login's user and
# grant) and shows it to a person, so a reply is refused whole, before anything is
# stored, unless every value fits: text printable and no longer than its store
# column, quantities and money within contract.limits, times with a zone.
# (Scope and duplicate keys: BodSnapshot below and sync.bod, which knows the user.)


def _printable(value: str) -> str:
    """Refuse control characters (C0, DEL, C1: ESC rewrites a terminal), format
    characters (bidi overrides and isolates such as U+202E reorder what a person
    reads; zero-width characters make two ids look alike), surrogates and line or
    paragraph separators: exactly what ``str.isprintable`` calls non-printable, bar
    the ASCII space."""
    if value.isprintable():
        return value
    at, ch = next((i, c) for i, c in enumerate(value) if not c.isprintable())
    raise ValueError(
        f"character U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}) at position {at} is not "
        f"allowed: control, format (bidi) and separator characters are refused"
    )


# Printable text of at most N characters (the store's column width); the length is
# checked first, so a huge string costs nothing to refuse.  (Spelled out per alias,
# not built by a function, so that type checkers see each one as ``str``.)
_PRINTABLE = AfterValidator(_printable)

ClientId = Annotated[str, StringConstraints(min_length=1, max_length=32), _PRINTABLE]
Symbol = Annotated[str, StringConstraints(min_length=1, max_length=40), _PRINTABLE]
# user, order, trade, client order, key and dealer ids: String(64) columns
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64), _PRINTABLE]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200), _PRINTABLE]
Reason = Annotated[str, StringConstraints(min_length=0, max_length=500), _PRINTABLE]
Base64 = Annotated[str, StringConstraints(min_length=1, max_length=256), _PRINTABLE]  # a key or signature
Token = Annotated[str, StringConstraints(min_length=1, max_length=4096), _PRINTABLE]

Quantity = Annotated[int, Field(ge=0, le=MAX_QUANTITY)]
NetQuantity = Annotated[int, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]
LotQuantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]
# Prices and limits the store keeps exactly (four decimal places, localstore.coltypes.Money).
ExactPrice = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, decimal_places=4), _AS_FLOAT]
# Figures main derives (average price, P&L, MTM): the store rounds them to four places.
Amount = Annotated[Decimal, Field(ge=-MAX_MONEY, le=MAX_MONEY), _AS_FLOAT]


def _convertible(value: datetime) -> datetime:
    if not 1970 <= value.year <= 9000:  # the store converts every time to UTC: year 1 or 9999 overflows
        raise ValueError(f"year {value.year} is out of range (1970-9000)")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_convertible)]


class Wire(BaseModel):
    """Base of every wire model: unknown fields are ignored (forward compatible),
    values are validated strictly enough that a wrong type is a protocol error."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)


# --------------------------------------------------------------------------- enums
# (contract.enums: standard library only, for the backup path; the same classes)

from contract.enums import (  # noqa: E402, F401
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


SiteRole = Literal["primary", "standby"]
EPOCH_HEADER = "X-Lifeboat-Epoch"  # every reply of a site carries its epoch (the DR tier's fencing number)
ROLE_HEADER = "X-Lifeboat-Role"


class Health(Wire):
    status: Literal["ok"]
    trading_date: date
    server_time: Moment
    # the DR tier (CONTRACT: every site says its role and epoch; a standby what it follows and how far
    # behind it is).  Defaults: a site that predates the DR tier is a primary at epoch 0.
    role: SiteRole = "primary"
    epoch: int = Field(default=0, ge=0, le=2**53)
    following: str | None = Field(default=None, max_length=2048)
    replication_lag_s: float | None = Field(default=None, ge=0, le=10**9)


class SessionRequest(Wire):
    user_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserInfo(Wire):
    user_id: Ident
    role: Role
    client_ids: list[ClientId]  # a supervisor's list holds every client


class GrantClaims(Wire):
    """What an offline grant asserts.  Signed by the main system with Ed25519."""

    user_id: Ident
    role: Role
    client_ids: list[ClientId]
    trading_date: date
    issued_at: Moment
    valid_until: Moment  # end of the trading day (23:59:59 IST of trading_date)
    key_id: Ident


class OfflineGrant(Wire):
    claims: GrantClaims
    signature: Base64  # base64 (standard, padded) Ed25519 signature over grant_signing_bytes(claims)


def grant_signing_bytes(claims: GrantClaims | dict[str, Any]) -> bytes:
    """The exact bytes an offline grant's signature covers: canonical JSON of the claims
    (sorted keys, no whitespace, JSON-mode values)."""
    from contract.grants import claims_bytes  # one definition, shared with offline login

    return claims_bytes(claims.model_dump(mode="json") if isinstance(claims, GrantClaims) else claims)


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class SessionResponse(Wire):
    access_token: Token
    expires_at: Moment
    user: UserInfo
    offline_grant: OfflineGrant


class PublicKey(Wire):
    key_id: Ident
    algorithm: Literal["Ed25519"]
    public_key: Base64  # base64 of the raw 32-byte public key


class KeySet(Wire):
    keys: list[PublicKey]


# --------------------------------------------------------------------------- reference data


class Instrument(Wire):
    exchange: Exchange
    symbol: Symbol
    name: Name
    instrument_type: Literal["EQ", "FUT"]
    lot_size: LotQuantity
    tick_size: ExactPrice = Field(gt=0)
    last_price: ExactPrice
    lower_band: ExactPrice  # the day's circuit band: prices outside it are rejected
    upper_band: ExactPrice
    freeze_quantity: LotQuantity  # largest quantity in one order
    previous_close: ExactPrice


class Client(Wire):
    client_id: ClientId
    name: Name
    dealer_id: Ident


class ClientLimit(Wire):
    client_id: ClientId
    max_order_value: ExactPrice  # value of one order (quantity x price)
    max_gross_exposure: ExactPrice  # sum over positions of |net_quantity| x last_price, after the order
    # the client's intraday MTM loss at which RMS squares off (a positive amount; None: no such
    # limit).  The console alerts at fractions of it and acts at 100% (sync.rms)
    max_mtm_loss: ExactPrice | None = None


# --------------------------------------------------------------------------- positions, orders, trades


class Position(Wire):
    client_id: ClientId
    exchange: Exchange
    symbol: Symbol
    product: Product
    net_quantity: NetQuantity  # > 0 long, < 0 short, 0 flat
    average_price: Amount  # of the open net quantity; 0 when flat
    last_price: Amount
    realised_pnl: Amount
    mtm: Amount  # realised + (last_price - average_price) x net_quantity
    buy_quantity: Quantity
    sell_quantity: Quantity
    updated_at: Moment


class OrderRequest(Wire):
    """Body of ``POST /orders``.  ``client_order_id`` is the idempotency key."""

    client_order_id: Ident  # printable: main echoes it in every reply about the order
    client_id: str = Field(min_length=1, max_length=32)
    exchange: Exchange
    symbol: str = Field(min_length=1, max_length=40)
    side: Side
    quantity: StrictInt
    product: Product
    order_type: OrderType
    price: Price | None = None
    trigger_price: Price | None = None
    validity: Validity = Validity.DAY
    disclosed_quantity: StrictInt | None = None

    def same_parameters(self, other: OrderRequest) -> bool:
        """True when two requests with one client_order_id ask for the same order."""
        return self.model_dump(exclude={"client_order_id"}) == other.model_dump(exclude={"client_order_id"})


class OrderModify(Wire):
    """Body of ``PATCH /orders/{order_id}``: only the given fields change."""

    quantity: StrictInt | None = None
    price: Price | None = None
    trigger_price: Price | None = None
    order_type: OrderType | None = None
    validity: Validity | None = None
    disclosed_quantity: StrictInt | None = None


class Order(Wire):
    order_id: Ident
    client_order_id: Ident
    client_id: ClientId
    exchange: Exchange
    symbol: Symbol
    side: Side
    quantity: Quantity
    filled_quantity: Quantity
    average_price: Amount  # of the fills; 0 when none
    product: Product
    order_type: OrderType
    price: ExactPrice | None
    trigger_price: ExactPrice | None
    validity: Validity
    disclosed_quantity: Quantity | None
    status: OrderStatus
    status_reason: Reason | None = None
    placed_by: Ident
    created_at: Moment
    updated_at: Moment


class Trade(Wire):
    trade_id: Ident
    order_id: Ident
    client_order_id: Ident
    client_id: ClientId
    exchange: Exchange
    symbol: Symbol
    side: Side
    product: Product
    quantity: Quantity
    price: Amount
    traded_at: Moment


class BodSnapshot(Wire):
    """Start-of-day snapshot of a user's scope.  ``seq`` is the event sequence the
    snapshot is consistent with: a mirror resumes the stream with ``?since=seq``."""

    trading_date: date
    generated_at: Moment
    seq: Seq
    user: UserInfo
    instruments: list[Instrument]
    clients: list[Client]
    limits: list[ClientLimit]
    positions: list[Position]
    open_orders: list[Order]
    trades: list[Trade]

    @model_validator(mode="after")
    def _one_scope_no_duplicates(self) -> BodSnapshot:
        """Every row is the snapshot's own user's and no key appears twice: a snapshot
        that breaks either is refused whole (the store would mix scopes, or fail on a
        unique key halfway)."""
        scope = frozenset(self.user.client_ids)
        for table in ("clients", "limits", "positions", "open_orders", "trades"):
            for i, row in enumerate(getattr(self, table)):
                if row.client_id not in scope:
                    raise ValueError(
                        f"{table}[{i}]: client {row.client_id!r} is outside the scope of user "
                        f"{self.user.user_id!r} ({len(scope)} clients)"
                    )
        clients = {c.client_id for c in self.clients}
        for i, limit in enumerate(self.limits):
            if limit.client_id not in clients:
                raise ValueError(
                    f"limits[{i}]: client {limit.client_id!r} is not among the snapshot's clients"
                )
        _unique("instruments", self.instruments, lambda r: (r.exchange.value, r.symbol))
        _unique("clients", self.clients, lambda r: r.client_id)
        _unique("limits", self.limits, lambda r: r.client_id)
        _unique(
            "positions", self.positions, lambda r: (r.client_id, r.exchange.value, r.symbol, r.product.value)
        )
        _unique("open_orders", self.open_orders, lambda r: r.order_id)
        _unique("open_orders", self.open_orders, lambda r: r.client_order_id)
        _unique("trades", self.trades, lambda r: r.trade_id)
        return self


def _unique(table: str, rows: list, key) -> None:
    seen: dict = {}
    for i, row in enumerate(rows):
        k = key(row)
        if k in seen:
            raise ValueError(f"{table}[{i}] repeats the key {k!r} of {table}[{seen[k]}]")
        seen[k] = i


# --------------------------------------------------------------------------- faults (mainsim --allow-faults)


class FaultMode(str, Enum):
    NONE = "none"  # serve normally
    REFUSE = "refuse"  # stop listening: new connections are refused, open ones reset
    HANG = "hang"  # accept and never answer; open connections go silent
    ERROR = "error"  # answer every request with 503; open streams closed


class FaultRequest(Wire):
    mode: FaultMode
    duration_s: StrictFloat | None = Field(default=None, gt=0, le=3600)  # recover by itself after this


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


class Tick(Wire):  # shown on the market watch as it comes
    exchange: Exchange
    symbol: Symbol
    last_price: ExactPrice


class TickMsg(Wire):
    type: Literal["tick"]
    seq: int
    ticks: list[Tick]
    server_time: datetime


class OrderEvent(Wire):
    type: Literal["order"]
    seq: Seq
    data: Order


class TradeEvent(Wire):
    type: Literal["trade"]
    seq: Seq
    data: Trade


class PositionEvent(Wire):
    type: Literal["position"]
    seq: Seq
    data: Position


class ResnapshotMsg(Wire):
    type: Literal["resnapshot"]
    seq: int  # the server's newest event sequence
    reason: str


StreamMessage = Annotated[
    HelloMsg | HeartbeatMsg | TickMsg | OrderEvent | TradeEvent | PositionEvent | ResnapshotMsg,
    Field(discriminator="type"),
]

EVENT_TYPES = frozenset({"order", "trade", "position"})
