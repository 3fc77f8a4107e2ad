"""The store's ORM classes, mapped onto the one schema (localstore.core_tables).

Each class is a declarative class over its Core table (``__table__ =
core_tables.<table>``): the columns, constraints and indexes are written once, there,
and ``Model.__table__ is core_tables.<table>``.  The annotations below only type the
attributes (they add no columns).  What the ORM adds: the relationships (which also
tell the unit of work to insert the parent row first) and the journal's ``updated_at``
stamp on every flush that changes a row (Core statements set what they mean to set:
the acknowledgement stamp leaves it alone, a replay step sets it).

Schema changes go through Alembic (localstore/migrations); a test asserts that the
migrated schema equals these tables.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, object_session, relationship
from sqlalchemy.orm.attributes import get_history

from contract.enums import (
    Exchange,
    OrderStatus,
    OrderType,
    Product,
    Role,
    Side,
    Validity,
)
from localstore import core_tables as t
from localstore.coltypes import MONEY_SCALE, Money, UtcDateTime, utcnow  # noqa: F401 - re-exported
from localstore.core_tables import GENESIS_HASH, NAMING_CONVENTION, RecordSource  # noqa: F401 - re-exported
from localstore.journal_states import FINAL_JOURNAL_STATES, JournalKind, JournalState  # noqa: F401 - re-exported


class Base(DeclarativeBase):
    metadata = t.metadata


# --------------------------------------------------------------------------- identity


class ConsoleIdentity(Base):
    """This console's stable id (e.g. ``C7K2QX``), part of every client_order_id it makes."""

    __table__ = t.console_identity

    id: Mapped[int]
    console_id: Mapped[str]
    created_at: Mapped[datetime]


# --------------------------------------------------------------------------- reference data


class InstrumentRow(Base):
    __table__ = t.instruments

    exchange: Mapped[Exchange]
    symbol: Mapped[str]
    name: Mapped[str]
    instrument_type: Mapped[str]
    lot_size: Mapped[int]
    tick_size: Mapped[Decimal]
    last_price: Mapped[Decimal]
    lower_band: Mapped[Decimal]
    upper_band: Mapped[Decimal]
    freeze_quantity: Mapped[int]
    previous_close: Mapped[Decimal]
    updated_at: Mapped[datetime]


class ClientRow(Base):
    __table__ = t.clients

    client_id: Mapped[str]
    name: Mapped[str]
    dealer_id: Mapped[str]


class ClientLimitRow(Base):
    __table__ = t.client_limits

    client_id: Mapped[str]
    max_order_value: Mapped[Decimal]
    max_gross_exposure: Mapped[Decimal]
    max_mtm_loss: Mapped[Decimal | None]
    # the relationship also tells the unit of work to insert the client first
    client: Mapped[ClientRow] = relationship(lazy="joined", passive_deletes=True)


# --------------------------------------------------------------------------- users and offline login


class UserRow(Base):
    """A user who logged in online on this console (what offline login and scope checks need)."""

    __table__ = t.users

    user_id: Mapped[str]
    role: Mapped[Role]
    client_ids: Mapped[str]  # JSON list of client ids
    last_online_login_at: Mapped[datetime | None]


class OfflineCredential(Base):
    """What offline login needs: a local scrypt verifier and the main system's signed
    grant.  Never a password, never a token."""

    __table__ = t.offline_credentials

    user_id: Mapped[str]
    verifier: Mapped[str]  # localstore.credentials format
    grant_json: Mapped[str]  # the whole wire.OfflineGrant JSON
    key_id: Mapped[str]
    public_key: Mapped[str]  # base64 raw Ed25519 public key
    valid_until: Mapped[datetime]
    trading_date: Mapped[date]
    updated_at: Mapped[datetime]
    # the relationship also tells the unit of work to insert the user first
    user: Mapped[UserRow] = relationship(lazy="joined", passive_deletes=True)


# --------------------------------------------------------------------------- the mirror


class PositionRow(Base):
    __table__ = t.positions

    client_id: Mapped[str]
    exchange: Mapped[Exchange]
    symbol: Mapped[str]
    product: Mapped[Product]
    net_quantity: Mapped[int]
    average_price: Mapped[Decimal]
    last_price: Mapped[Decimal]
    realised_pnl: Mapped[Decimal]
    mtm: Mapped[Decimal]
    buy_quantity: Mapped[int]
    sell_quantity: Mapped[int]
    updated_at: Mapped[datetime]
    source: Mapped[RecordSource]
    updated_seq: Mapped[int | None]


class OrderRow(Base):
    __table__ = t.orders

    order_id: Mapped[str]
    client_order_id: Mapped[str]
    client_id: Mapped[str]
    exchange: Mapped[Exchange]
    symbol: Mapped[str]
    side: Mapped[Side]
    quantity: Mapped[int]
    filled_quantity: Mapped[int]
    average_price: Mapped[Decimal]
    product: Mapped[Product]
    order_type: Mapped[OrderType]
    price: Mapped[Decimal | None]
    trigger_price: Mapped[Decimal | None]
    validity: Mapped[Validity]
    disclosed_quantity: Mapped[int | None]
    status: Mapped[OrderStatus]
    status_reason: Mapped[str | None]
    placed_by: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    source: Mapped[RecordSource]
    updated_seq: Mapped[int | None]


class TradeRow(Base):
    __table__ = t.trades

    trade_id: Mapped[str]
    order_id: Mapped[str]  # no FK: a fill may arrive before its order
    client_order_id: Mapped[str]
    client_id: Mapped[str]
    exchange: Mapped[Exchange]
    symbol: Mapped[str]
    side: Mapped[Side]
    product: Mapped[Product]
    quantity: Mapped[int]
    price: Mapped[Decimal]
    traded_at: Mapped[datetime]
    source: Mapped[RecordSource]
    updated_seq: Mapped[int | None]


# --------------------------------------------------------------------------- the journal


class JournalEntry(Base):
    """One intent taken in backup mode, in journal order (``seq``).  Written durably
    before anyone is told "done"; replayed to main exactly once, keyed by
    ``client_order_id``."""

    __table__ = t.journal

    seq: Mapped[int]
    created_at: Mapped[datetime]
    trading_date: Mapped[date]
    console_id: Mapped[str]
    user_id: Mapped[str]
    mode: Mapped[str]
    kind: Mapped[JournalKind]
    client_order_id: Mapped[str]
    client_id: Mapped[str]
    exchange: Mapped[Exchange | None]
    symbol: Mapped[str | None]
    product: Mapped[Product | None]
    target_order_id: Mapped[str | None]  # MODIFY/CANCEL of a main order
    target_client_order_id: Mapped[str | None]  # ... or of a journaled one
    payload: Mapped[str]  # JSON: the intent
    state: Mapped[JournalState]
    state_reason: Mapped[str | None]
    main_order_id: Mapped[str | None]
    attempts: Mapped[int]
    updated_at: Mapped[datetime]  # stamped by every flush that changes the row (below)
    # when the person or script was told "accepted" (NULL: committed, never acknowledged)
    acknowledged_at: Mapped[datetime | None]
    sent_to: Mapped[str | None]


@event.listens_for(JournalEntry, "before_update")
def _stamp_updated_at(mapper: Mapper[Any], connection: Any, target: JournalEntry) -> None:
    """A flush that changes a journal row stamps ``updated_at`` unless it sets it itself
    (what a column ``onupdate`` did when the models declared their own columns; kept on
    the ORM only, so Core statements on the shared table are not changed)."""
    session = object_session(target)
    if session is None or not session.is_modified(target, include_collections=False):
        return  # dirty without a net change: no UPDATE is emitted
    if not get_history(target, "updated_at").has_changes():
        target.updated_at = utcnow()


# --------------------------------------------------------------------------- audit


class AuditRow(Base):
    """One audited action.  ``hash`` = SHA-256 over the canonical JSON of
    (id, at, user_id, mode, action, payload) followed by ``prev_hash``
    (see localstore.audit)."""

    __table__ = t.audit_log

    id: Mapped[int]
    at: Mapped[str]  # UTC ISO 8601
    user_id: Mapped[str | None]
    mode: Mapped[str]
    action: Mapped[str]
    payload: Mapped[str]  # canonical JSON, secrets redacted
    prev_hash: Mapped[str]
    hash: Mapped[str]


class AuditHead(Base):
    """The chain's end, updated in the same transaction as each append, so a deleted
    tail is detected too."""

    __table__ = t.audit_head

    id: Mapped[int]
    last_id: Mapped[int]
    last_hash: Mapped[str]
    count: Mapped[int]


class AuditCheckpoint(Base):
    """A signed checkpoint of the audit chain (localstore.checkpoints): "row ``seq``'s
    hash is ``head_hash``", signed with the console's key kept outside the store, and
    whether main has witnessed it (``witnessed_at``) or refused it (``refused_reason``).
    ``number`` counts 1, 2, 3 ...: a gap shows a deleted checkpoint."""

    __table__ = t.audit_checkpoints

    number: Mapped[int]
    console_id: Mapped[str]
    seq: Mapped[int]
    head_hash: Mapped[str]
    at: Mapped[str]  # UTC ISO 8601
    mode: Mapped[str]
    reason: Mapped[str]
    public_key: Mapped[str]  # raw Ed25519, base64
    signature: Mapped[str]
    witnessed_at: Mapped[datetime | None]
    refused_reason: Mapped[str | None]


# --------------------------------------------------------------------------- sync, replay


class SyncState(Base):
    """Freshness of the local book: last BOD, last applied stream event, and the clock
    watermark (newest wall-clock time this store has seen; never goes back)."""

    __table__ = t.sync_state

    id: Mapped[int]
    trading_date: Mapped[date | None]
    bod_at: Mapped[datetime | None]
    bod_seq: Mapped[int | None]
    last_event_seq: Mapped[int | None]
    last_event_at: Mapped[datetime | None]  # server time of newest applied event
    last_applied_at: Mapped[datetime | None]  # local time it was applied
    clock_watermark: Mapped[datetime | None]


class ReplayLease(Base):
    """Who is replaying the journal right now (one replayer per store)."""

    __table__ = t.replay_lease

    id: Mapped[int]
    holder: Mapped[str | None]
    acquired_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class ReconciliationReport(Base):
    __table__ = t.reconciliation_report

    id: Mapped[int]
    created_at: Mapped[datetime]
    json: Mapped[str]


# --------------------------------------------------------------------------- console state, policy (revision 0002)


class ConsoleState(Base):
    """The console's mode as its runtime (agent or TUI) last decided it, and a
    supervisor's forced mode, if any.  One-shot CLI commands read it: a forced mode
    wins over their own probe."""

    __table__ = t.console_state

    id: Mapped[int]
    mode: Mapped[str]
    mode_since: Mapped[datetime | None]
    mode_reason: Mapped[str | None]
    forced_mode: Mapped[str | None]  # None: the detector decides
    forced_by: Mapped[str | None]
    forced_at: Mapped[datetime | None]
    highest_epoch: Mapped[int]


class Policy(Base):
    """Backup-mode policy, changed only by a supervisor (audited).  Reduce-only unless
    ``allow_new_exposure``; the kill switch blocks new exposure in every mode."""

    __table__ = t.policy

    id: Mapped[int]
    allow_new_exposure: Mapped[bool]
    killswitch: Mapped[bool]
    stale_after_minutes: Mapped[int]
    updated_by: Mapped[str | None]
    updated_at: Mapped[datetime | None]


class OrderIdCounter(Base):
    """The last number used in this console's client_order_ids (never reused)."""

    __table__ = t.order_id_counter

    id: Mapped[int]
    last_value: Mapped[int]


class RmsRun(Base):
    """A risk rule run once for a day and scope (sync.rms: the intraday cut-off, an MTM-loss square-off)."""

    __table__ = t.rms_runs

    trading_date: Mapped[date]
    rule: Mapped[str]
    scope: Mapped[str]
    at: Mapped[datetime]
    mode: Mapped[str]
    entries: Mapped[int]
    detail: Mapped[str]


class RmsClientState(Base):
    """A client's MTM-loss alert level and square-off mode for a day (sync.rms.limits)."""

    __table__ = t.rms_client_state

    trading_date: Mapped[date]
    client_id: Mapped[str]
    alert_level: Mapped[int]
    squareoff_mode: Mapped[bool]
    mtm: Mapped[Decimal | None]
    max_mtm_loss: Mapped[Decimal | None]
    updated_at: Mapped[datetime]
