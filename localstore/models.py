"""Tables of the console's local store (SQLAlchemy 2.x declarative).

Why these shapes:

* The same models must run on PostgreSQL (a desk sharing one backup store on its
  DR server), so nothing here is SQLite-only: money is an exact integer count of
  1/10,000 rupee units (``Money``), times are timezone-aware UTC (``UtcDateTime``),
  enums are VARCHAR + CHECK (no native enum types), and constraints have names so
  later Alembic batch migrations on SQLite can find them.
* Mirror tables (instruments ... trades) carry the fields of
  ``contract.wire`` one to one, plus ``source`` (bod / stream / local) and
  ``updated_seq`` (the stream event sequence that last wrote the row) so the live
  mirror can ignore stale events.
* The journal is the heart of backup mode: one row per intent, its states and
  kinds are Python enums here (``JournalState``, ``JournalKind``) and a CHECK in
  the database.
* Single-row tables (console_identity, audit_head, sync_state, replay_lease) use
  ``id = 1`` with a CHECK, so a second row can never appear.

Schema changes go through Alembic (localstore/migrations); a test asserts the
migrated schema equals these models.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from contract.wire import Exchange, OrderStatus, OrderType, Product, Role, Side, Validity

# column types live in localstore.coltypes so Core-only readers (`lifeboat status`)
# can use them without importing the ORM models; re-exported here
from localstore.coltypes import MONEY_SCALE, Money, UtcDateTime, utcnow  # noqa: F401


def _enum(cls: type[enum.Enum], name: str) -> SAEnum:
    """A portable enum column: VARCHAR + named CHECK, storing the enum's value."""
    return SAEnum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
        length=max(len(m.value) for m in cls),
    )


# --------------------------------------------------------------------------- journal enums


class JournalKind(str, enum.Enum):
    """What a journal row asks the main system to do."""

    PLACE = "PLACE"
    MODIFY = "MODIFY"
    CANCEL = "CANCEL"
    SQUARE_OFF = "SQUARE_OFF"  # "flatten client C in symbol S, product P": recomputed on replay


class JournalState(str, enum.Enum):
    """Where a journal row is in its life.  pending -> sent -> one of the final states;
    held waits for an operator's decision."""

    PENDING = "pending"  # durably journaled, not yet sent to main
    SENT = "sent"  # sent; outcome unknown until looked up by client_order_id
    APPLIED = "applied"  # main accepted it
    MOOT = "moot"  # nothing left to do (e.g. position already flat, order already closed)
    REJECTED = "rejected"  # main refused it
    CONFLICT = "conflict"  # main's state contradicts the intent; a person decides
    HELD = "held"  # stale (policy window, new trading day): held for a person


FINAL_JOURNAL_STATES = frozenset({JournalState.APPLIED, JournalState.MOOT, JournalState.REJECTED})


class RecordSource(str, enum.Enum):
    """Where a mirror row came from."""

    BOD = "bod"  # start-of-day snapshot
    STREAM = "stream"  # live mirror of the main system's events
    LOCAL = "local"  # written locally in backup mode


# --------------------------------------------------------------------------- base

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _singleton() -> CheckConstraint:
    return CheckConstraint("id = 1", name="singleton")


# --------------------------------------------------------------------------- identity


class ConsoleIdentity(Base):
    """This console's stable id (e.g. ``C7K2QX``), part of every client_order_id it makes."""

    __tablename__ = "console_identity"
    __table_args__ = (_singleton(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    console_id: Mapped[str] = mapped_column(String(16), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)


# --------------------------------------------------------------------------- reference data


class InstrumentRow(Base):
    __tablename__ = "instruments"

    exchange: Mapped[Exchange] = mapped_column(_enum(Exchange, "exchange"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    instrument_type: Mapped[str] = mapped_column(String(8), nullable=False)
    lot_size: Mapped[int] = mapped_column(Integer, nullable=False)
    tick_size: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    last_price: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    lower_band: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    upper_band: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    freeze_quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    previous_close: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)


class ClientRow(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    dealer_id: Mapped[str] = mapped_column(String(64), nullable=False)


class ClientLimitRow(Base):
    __tablename__ = "client_limits"

    client_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    max_order_value: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    max_gross_exposure: Mapped[Decimal] = mapped_column(Money(), nullable=False)
    # the relationship also tells the unit of work to insert the client first
    client: Mapped[ClientRow] = relationship(lazy="joined", passive_deletes=True)


# --------------------------------------------------------------------------- users and offline login


class UserRow(Base):
    """A user who logged in online on this console (what offline login and scope checks need)."""

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), nullable=False)
    client_ids: Mapped[str] = mapped_column(Text, nullable=False, default="[]")  # JSON list of client ids
    last_online_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OfflineCredential(Base):
    """What offline login needs: a local scrypt verifier and the main system's signed
    grant.  Never a password, never a token."""

    __tablename__ = "offline_credentials"

    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    verifier: Mapped[str] = mapped_column(Text, nullable=False)  # localstore.credentials format
    grant_json: Mapped[str] = mapped_column(Text, nullable=False)  # the whole wire.OfflineGrant JSON
    key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    public_key: Mapped[str] = mapped_column(Text, nullable=False)  # base64 raw Ed25519 public key
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    trading_date: Mapped[date] = mapped_column(Date, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    # the relationship also tells the unit of work to insert the user first
    user: Mapped[UserRow] = relationship(lazy="joined", passive_deletes=True)


# --------------------------------------------------------------------------- the mirror


class PositionRow(Base):
    __tablename__ = "positions"

    client_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    exchange: Mapped[Exchange] = mapped_column(_enum(Exchange, "exchange"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(40), primary_key=True)
    product: Mapped[Product] = mapped_column(_enum(Product, "product"), primary_key=True)
    net_quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    average_price: Mapped[Decimal] = mapped_column(Money(exact=False), nullable=False)
    last_price: Mapped[Decimal] = mapped_column(Money(exact=False), nullable=False)
    realised_pnl: Mapped[Decimal] = mapped_column(Money(exact=False), nullable=False)
    mtm: Mapped[Decimal] = mapped_column(Money(exact=False), nullable=False)
    buy_quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    sell_quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    source: Mapped[RecordSource] = mapped_column(_enum(RecordSource, "record_source"), nullable=False)
    updated_seq: Mapped[int | None] = mapped_column(BigInteger)


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_client_status", "client_id", "status"),)

    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_order_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    client_id: Mapped[str] = mapped_column(String(32), nullable=False)
    exchange: Mapped[Exchange] = mapped_column(_enum(Exchange, "exchange"), nullable=False)
    symbol: Mapped[str] = mapped_column(String(40), nullable=False)
    side: Mapped[Side] = mapped_column(_enum(Side, "side"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    filled_quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    average_price: Mapped[Decimal] = mapped_column(Money(exact=False), nullable=False)
    product: Mapped[Product] = mapped_column(_enum(Product, "product"), nullable=False)
    order_type: Mapped[OrderType] = mapped_column(_enum(OrderType, "order_type"), nullable=False)
    price: Mapped[Decimal | None] = mapped_column(Money())
    trigger_price: Mapped[Decimal | None] = mapped_column(Money())
    validity: Mapped[Validity] = mapped_column(_enum(Validity, "validity"), nullable=False)
    disclosed_quantity: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"), nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)
    placed_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    source: Mapped[RecordSource] = mapped_column(_enum(RecordSource, "record_source"), nullable=False)
    updated_seq: Mapped[int | None] = mapped_column(BigInteger)


class TradeRow(Base):
    __tablename__ = "trades"
    __table_args__ = (Index("ix_trades_client_id", "client_id"),)

    trade_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_id: Mapped[str] = mapped_column(
        String(64), nullable=False
    )  # no FK: a fill may arrive before its order
    client_order_id: Mapped[str] = mapped_column(String(64), nullable=False)
    client_id: Mapped[str] = mapped_column(String(32), nullable=False)
    exchange: Mapped[Exchange] = mapped_column(_enum(Exchange, "exchange"), nullable=False)
    symbol: Mapped[str] = mapped_column(String(40), nullable=False)
    side: Mapped[Side] = mapped_column(_enum(Side, "side"), nullable=False)
    product: Mapped[Product] = mapped_column(_enum(Product, "product"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    price: Mapped[Decimal] = mapped_column(Money(exact=False), nullable=False)
    traded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    source: Mapped[RecordSource] = mapped_column(_enum(RecordSource, "record_source"), nullable=False)
    updated_seq: Mapped[int | None] = mapped_column(BigInteger)


# --------------------------------------------------------------------------- the journal


class JournalEntry(Base):
    """One intent taken in backup mode, in journal order (``seq``).  Written durably
    before anyone is told "done"; replayed to main exactly once, keyed by
    ``client_order_id``."""

    __tablename__ = "journal"
    __table_args__ = (
        Index("ix_journal_state_seq", "state", "seq"),
        # the backup checks read a position's unfinished intents on every action (revision 0003)
        Index("ix_journal_position", "client_id", "exchange", "symbol", "product"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    trading_date: Mapped[date] = mapped_column(Date, nullable=False)
    console_id: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[JournalKind] = mapped_column(_enum(JournalKind, "journal_kind"), nullable=False)
    client_order_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    client_id: Mapped[str] = mapped_column(String(32), nullable=False)
    exchange: Mapped[Exchange | None] = mapped_column(_enum(Exchange, "exchange"))
    symbol: Mapped[str | None] = mapped_column(String(40))
    product: Mapped[Product | None] = mapped_column(_enum(Product, "product"))
    target_order_id: Mapped[str | None] = mapped_column(String(64))  # MODIFY/CANCEL of a main order
    target_client_order_id: Mapped[str | None] = mapped_column(String(64))  # ... or of a journaled one
    payload: Mapped[str] = mapped_column(Text, nullable=False, default="{}")  # JSON: the intent
    state: Mapped[JournalState] = mapped_column(
        _enum(JournalState, "journal_state"), nullable=False, default=JournalState.PENDING
    )
    state_reason: Mapped[str | None] = mapped_column(Text)
    main_order_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow, onupdate=utcnow)
    # When the person or script was told "accepted" (revision 0002).  NULL on a committed
    # entry means the process died between the durable commit and the answer: on
    # restart it is shown as "committed, never acknowledged" (it is still replayed).
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --------------------------------------------------------------------------- audit


GENESIS_HASH = "0" * 64  # prev_hash of the first audit row


class AuditRow(Base):
    """One audited action.  ``hash`` = SHA-256 over the canonical JSON of
    (id, at, user_id, mode, action, payload) followed by ``prev_hash``
    (see localstore.audit)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40), nullable=False)  # UTC ISO 8601
    user_id: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON, secrets redacted
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AuditHead(Base):
    """The chain's end, updated in the same transaction as each append, so a deleted
    tail is detected too."""

    __tablename__ = "audit_head"
    __table_args__ = (_singleton(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    last_id: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class AuditCheckpoint(Base):
    """A signed checkpoint of the audit chain (localstore.checkpoints): "row ``seq``'s
    hash is ``head_hash``", signed with the console's key kept outside the store, and
    whether main has witnessed it (``witnessed_at``) or refused it (``refused_reason``).
    ``number`` counts 1, 2, 3 ...: a gap shows a deleted checkpoint."""

    __tablename__ = "audit_checkpoints"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    console_id: Mapped[str] = mapped_column(String(16), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    head_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[str] = mapped_column(String(40), nullable=False)  # UTC ISO 8601
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    public_key: Mapped[str] = mapped_column(String(64), nullable=False)  # raw Ed25519, base64
    signature: Mapped[str] = mapped_column(String(128), nullable=False)
    witnessed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refused_reason: Mapped[str | None] = mapped_column(Text)


# --------------------------------------------------------------------------- sync, replay


class SyncState(Base):
    """Freshness of the local book: last BOD, last applied stream event, and the clock
    watermark (newest wall-clock time this store has seen; never goes back)."""

    __tablename__ = "sync_state"
    __table_args__ = (_singleton(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    trading_date: Mapped[date | None] = mapped_column(Date)
    bod_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    bod_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_event_seq: Mapped[int | None] = mapped_column(BigInteger)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # server time of newest applied event
    last_applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # local time it was applied
    clock_watermark: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReplayLease(Base):
    """Who is replaying the journal right now (one replayer per store)."""

    __tablename__ = "replay_lease"
    __table_args__ = (_singleton(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    holder: Mapped[str | None] = mapped_column(String(128))
    acquired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReconciliationReport(Base):
    __tablename__ = "reconciliation_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=utcnow)
    json: Mapped[str] = mapped_column(Text, nullable=False)


# --------------------------------------------------------------------------- console state, policy (revision 0002)


class ConsoleState(Base):
    """The console's mode as its runtime (agent or TUI) last decided it, and a
    supervisor's forced mode, if any.  One-shot CLI commands read it: a forced mode
    wins over their own probe."""

    __tablename__ = "console_state"
    __table_args__ = (_singleton(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="ONLINE")
    mode_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    mode_reason: Mapped[str | None] = mapped_column(Text)
    forced_mode: Mapped[str | None] = mapped_column(String(16))  # None: the detector decides
    forced_by: Mapped[str | None] = mapped_column(String(64))
    forced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Policy(Base):
    """Backup-mode policy, changed only by a supervisor (audited).  Reduce-only unless
    ``allow_new_exposure``; the kill switch blocks new exposure in every mode."""

    __tablename__ = "policy"
    __table_args__ = (_singleton(), CheckConstraint("stale_after_minutes > 0", name="stale_positive"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    allow_new_exposure: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    killswitch: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    stale_after_minutes: Mapped[int] = mapped_column(Integer, nullable=False, default=30)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OrderIdCounter(Base):
    """The last number used in this console's client_order_ids (never reused)."""

    __tablename__ = "order_id_counter"
    __table_args__ = (_singleton(),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False, default=1)
    last_value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
