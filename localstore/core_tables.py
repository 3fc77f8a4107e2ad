"""The store's schema: every table, once, as a Core ``Table``.

Why Core tables are the schema and the ORM classes (localstore.models) are mapped
onto them: a backup-mode command (``lifeboat squareoff`` with main down: probe,
offline login, one journal transaction, answer, acknowledgement) is timed end to end
(bench P3, goal 1.5 s), and importing ``sqlalchemy.orm`` costs about 0.3 s here, most
of what such a run spends on its own imports.  So the fast paths (the journal,
offline login, the audit append, `lifeboat status`) use these tables without the ORM,
the models use the very same ``Table`` objects (``Model.__table__ is
core_tables.<table>``), and there is nothing to keep equal.  This module must not
import ``sqlalchemy.orm`` (tests/integration/test_perf_paths.py checks the fast paths' modules).

Why these shapes:

* The same tables must run on PostgreSQL (a desk sharing one backup store on its
  DR server), so nothing here is SQLite-only: money is an exact integer count of
  1/10,000 rupee units (``Money``), times are timezone-aware UTC (``UtcDateTime``),
  enums are VARCHAR + CHECK (no native enum types), and constraints have names so
  later Alembic batch migrations on SQLite can find them.
* Mirror tables (instruments ... trades) carry the fields of ``contract.wire`` one
  to one, plus ``source`` (bod / stream / local) and ``updated_seq`` (the stream
  event sequence that last wrote the row) so the live mirror can ignore stale events.
* The journal is the heart of backup mode: one row per intent; its kinds and states
  are the enums of localstore.journal_states, stored by value with a CHECK.
* Single-row tables (console_identity, audit_head, sync_state, replay_lease,
  console_state, policy, order_id_counter) use ``id = 1`` with a CHECK, so a second
  row can never appear.

Schema changes go through Alembic (localstore/migrations, the history); a test
asserts that the migrated schema equals these tables.

Column defaults here apply to every insert, Core or ORM.  One rule is the ORM's
only: a flush that changes a journal row stamps ``updated_at`` (localstore.models);
Core statements set what they mean to set (the acknowledgement stamp leaves
``updated_at`` alone, a replay step sets it).
"""

from __future__ import annotations

import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy import Enum as SAEnum

from contract.auditchain import GENESIS_HASH  # noqa: F401 - prev_hash of the first audit row, as callers know it
from contract.enums import Exchange, OrderStatus, OrderType, Product, Role, Side, Validity
from localstore.coltypes import Money, UtcDateTime, utcnow
from localstore.journal_states import (  # noqa: F401 - the stored strings, as callers know them
    FINAL_STATES,
    HELD_STATES,
    KIND_CANCEL,
    KIND_MODIFY,
    KIND_PLACE,
    KIND_SQUARE_OFF,
    STATE_PENDING,
    STATE_SENT,
    UNFINISHED_STATES,
    JournalKind,
    JournalState,
)


class RecordSource(str, enum.Enum):
    """Where a mirror row came from."""

    BOD = "bod"  # start-of-day snapshot
    STREAM = "stream"  # live mirror of the main system's events
    LOCAL = "local"  # written locally in backup mode


def enum_type(cls: type[enum.Enum], name: str) -> SAEnum:
    """A portable enum column type: VARCHAR + a CHECK named ``name``, storing the
    enum's value (reads give the member back; the value's string is accepted too)."""
    return SAEnum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
        length=max(len(m.value) for m in cls),
    )


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _singleton() -> CheckConstraint:
    return CheckConstraint("id = 1", name="singleton")


def _singleton_id() -> Column:
    return Column("id", Integer, primary_key=True, autoincrement=False, default=1)


# --------------------------------------------------------------------------- identity

# this console's stable id (e.g. ``C7K2QX``), part of every client_order_id it makes
console_identity = Table(
    "console_identity",
    metadata,
    _singleton_id(),
    Column("console_id", String(16), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    _singleton(),
)


# --------------------------------------------------------------------------- reference data

instruments = Table(
    "instruments",
    metadata,
    Column("exchange", enum_type(Exchange, "exchange"), primary_key=True),
    Column("symbol", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("instrument_type", String(8), nullable=False),
    Column("lot_size", Integer, nullable=False),
    Column("tick_size", Money(), nullable=False),
    Column("last_price", Money(), nullable=False),
    Column("lower_band", Money(), nullable=False),
    Column("upper_band", Money(), nullable=False),
    Column("freeze_quantity", Integer, nullable=False),
    Column("previous_close", Money(), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("dealer_id", String(64), nullable=False),
)

client_limits = Table(
    "client_limits",
    metadata,
    Column("client_id", String(32), ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True),
    Column("max_order_value", Money(), nullable=False),
    Column("max_gross_exposure", Money(), nullable=False),
    Column("max_mtm_loss", Money()),  # revision 0006; NULL: main set no MTM-loss limit
)


# --------------------------------------------------------------------------- risk (sync.rms, revision 0006)

# Each automatic rule run once per console and trading day (the intraday cut-off per segment):
# written in the transaction that journals its intents, so a restart across the cut-off never
# runs it twice (the deterministic client_order_ids are the guard at main).
rms_runs = Table(
    "rms_runs",
    metadata,
    Column("trading_date", Date, primary_key=True),
    Column("rule", String(32), primary_key=True),  # intraday_cutoff, mtm_loss, ...
    Column("scope", String(40), primary_key=True),  # the segment (NSE, NFO ...) or the client id
    Column("at", UtcDateTime, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("entries", Integer, nullable=False),  # journal entries it wrote
    Column("detail", Text, nullable=False, default="{}"),  # JSON: the numbers it acted on
)

# A client's MTM-loss state for the day: the highest alert level reached (60, 75, 90 ...) and
# whether it is in square-off mode (reduce-only) after a breach.
rms_client_state = Table(
    "rms_client_state",
    metadata,
    Column("trading_date", Date, primary_key=True),
    Column("client_id", String(32), primary_key=True),
    Column("alert_level", Integer, nullable=False, default=0),  # percent of the limit last alerted
    Column("squareoff_mode", Boolean, nullable=False, default=False),
    Column("mtm", Money(exact=False)),
    Column("max_mtm_loss", Money()),
    Column("updated_at", UtcDateTime, nullable=False),
)


# --------------------------------------------------------------------------- users and offline login

# a user who logged in online on this console (what offline login and scope checks need)
users = Table(
    "users",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("role", enum_type(Role, "role"), nullable=False),
    Column("client_ids", Text, nullable=False, default="[]"),  # JSON list of client ids
    Column("last_online_login_at", UtcDateTime),
)

# what offline login needs: a local scrypt verifier and the main system's signed
# grant; never a password, never a token
offline_credentials = Table(
    "offline_credentials",
    metadata,
    Column("user_id", String(64), ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True),
    Column("verifier", Text, nullable=False),  # localstore.credentials format
    Column("grant_json", Text, nullable=False),  # the whole wire.OfflineGrant JSON
    Column("key_id", String(64), nullable=False),
    Column("public_key", Text, nullable=False),  # base64 raw Ed25519 public key
    Column("valid_until", UtcDateTime, nullable=False),
    Column("trading_date", Date, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow),
)


# --------------------------------------------------------------------------- the mirror

positions = Table(
    "positions",
    metadata,
    Column("client_id", String(32), primary_key=True),
    Column("exchange", enum_type(Exchange, "exchange"), primary_key=True),
    Column("symbol", String(40), primary_key=True),
    Column("product", enum_type(Product, "product"), primary_key=True),
    Column("net_quantity", Integer, nullable=False),
    Column("average_price", Money(exact=False), nullable=False),
    Column("last_price", Money(exact=False), nullable=False),
    Column("realised_pnl", Money(exact=False), nullable=False),
    Column("mtm", Money(exact=False), nullable=False),
    Column("buy_quantity", Integer, nullable=False),
    Column("sell_quantity", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("source", enum_type(RecordSource, "record_source"), nullable=False),
    Column("updated_seq", BigInteger),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("client_id", String(32), nullable=False),
    Column("exchange", enum_type(Exchange, "exchange"), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", enum_type(Side, "side"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("filled_quantity", Integer, nullable=False),
    Column("average_price", Money(exact=False), nullable=False),
    Column("product", enum_type(Product, "product"), nullable=False),
    Column("order_type", enum_type(OrderType, "order_type"), nullable=False),
    Column("price", Money()),
    Column("trigger_price", Money()),
    Column("validity", enum_type(Validity, "validity"), nullable=False),
    Column("disclosed_quantity", Integer),
    Column("status", enum_type(OrderStatus, "order_status"), nullable=False),
    Column("status_reason", Text),
    Column("placed_by", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("source", enum_type(RecordSource, "record_source"), nullable=False),
    Column("updated_seq", BigInteger),
    Index("ix_orders_client_status", "client_id", "status"),
)

trades = Table(
    "trades",
    metadata,
    Column("trade_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False),  # no FK: a fill may arrive before its order
    Column("client_order_id", String(64), nullable=False),
    Column("client_id", String(32), nullable=False),
    Column("exchange", enum_type(Exchange, "exchange"), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", enum_type(Side, "side"), nullable=False),
    Column("product", enum_type(Product, "product"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("price", Money(exact=False), nullable=False),
    Column("traded_at", UtcDateTime, nullable=False),
    Column("source", enum_type(RecordSource, "record_source"), nullable=False),
    Column("updated_seq", BigInteger),
    Index("ix_trades_client_id", "client_id"),
)


# --------------------------------------------------------------------------- the journal

# One intent taken in backup mode, in journal order (``seq``).  Written durably before
# anyone is told "done"; replayed to main exactly once, keyed by ``client_order_id``.
journal = Table(
    "journal",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("trading_date", Date, nullable=False),
    Column("console_id", String(16), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("kind", enum_type(JournalKind, "journal_kind"), nullable=False),
    Column("client_order_id", String(64), nullable=False, unique=True),
    Column("client_id", String(32), nullable=False),
    Column("exchange", enum_type(Exchange, "exchange")),
    Column("symbol", String(40)),
    Column("product", enum_type(Product, "product")),
    Column("target_order_id", String(64)),  # MODIFY/CANCEL of a main order
    Column("target_client_order_id", String(64)),  # ... or of a journaled one
    Column("payload", Text, nullable=False, default="{}"),  # JSON: the intent
    Column("state", enum_type(JournalState, "journal_state"), nullable=False, default=JournalState.PENDING),
    Column("state_reason", Text),
    Column("main_order_id", String(64)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", UtcDateTime, nullable=False, default=utcnow),  # the ORM stamps it on update
    # When the person or script was told "accepted" (revision 0002).  NULL on a committed
    # entry means the process died between the durable commit and the answer: on
    # restart it is shown as "committed, never acknowledged" (it is still replayed).
    Column("acknowledged_at", UtcDateTime),
    # the site (base URL) the last attempt was sent to (revision 0007, the DR tier): an answer
    # lost there is not settled by the other site's "not found"
    Column("sent_to", String(2048)),
    Index("ix_journal_state_seq", "state", "seq"),
    # the backup checks read a position's unfinished intents on every action (revision 0003)
    Index("ix_journal_position", "client_id", "exchange", "symbol", "product"),
    CheckConstraint("attempts >= 0", name="attempts_non_negative"),
)


# --------------------------------------------------------------------------- audit

# One audited action.  ``hash`` = SHA-256 over the canonical JSON of (id, at, user_id,
# mode, action, payload) followed by ``prev_hash`` (see localstore.audit).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),  # UTC ISO 8601
    Column("user_id", String(64)),
    Column("mode", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON, secrets redacted
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# the chain's end, updated in the same transaction as each append, so a deleted tail
# is detected too
audit_head = Table(
    "audit_head",
    metadata,
    _singleton_id(),
    Column("last_id", Integer, nullable=False, default=0),
    Column("last_hash", String(64), nullable=False),
    Column("count", Integer, nullable=False, default=0),
    _singleton(),
)

# A signed checkpoint of the audit chain (localstore.checkpoints): "row ``seq``'s hash
# is ``head_hash``", signed with the console's key kept outside the store, and whether
# main has witnessed it (``witnessed_at``) or refused it (``refused_reason``).
# ``number`` counts 1, 2, 3 ...: a gap shows a deleted checkpoint.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("console_id", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("at", String(40), nullable=False),  # UTC ISO 8601
    Column("mode", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("public_key", String(64), nullable=False),  # raw Ed25519, base64
    Column("signature", String(128), nullable=False),
    Column("witnessed_at", UtcDateTime),
    Column("refused_reason", Text),
)


# --------------------------------------------------------------------------- sync, replay

# Freshness of the local book: last BOD, last applied stream event, and the clock
# watermark (newest wall-clock time this store has seen; never goes back).
sync_state = Table(
    "sync_state",
    metadata,
    _singleton_id(),
    Column("trading_date", Date),
    Column("bod_at", UtcDateTime),
    Column("bod_seq", BigInteger),
    Column("last_event_seq", BigInteger),
    Column("last_event_at", UtcDateTime),  # server time of newest applied event
    Column("last_applied_at", UtcDateTime),  # local time it was applied
    Column("clock_watermark", UtcDateTime),
    _singleton(),
)

# who is replaying the journal right now (one replayer per store)
replay_lease = Table(
    "replay_lease",
    metadata,
    _singleton_id(),
    Column("holder", String(128)),
    Column("acquired_at", UtcDateTime),
    Column("expires_at", UtcDateTime),
    _singleton(),
)

reconciliation_report = Table(
    "reconciliation_report",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False, default=utcnow),
    Column("json", Text, nullable=False),
)


# --------------------------------------------------------------------------- console state, policy (revision 0002)

# The console's mode as its runtime (agent or TUI) last decided it, and a supervisor's
# forced mode, if any.  One-shot CLI commands read it: a forced mode wins over their
# own probe.
console_state = Table(
    "console_state",
    metadata,
    _singleton_id(),
    Column("mode", String(16), nullable=False, default="ONLINE"),
    Column("mode_since", UtcDateTime),
    Column("mode_reason", Text),
    Column("forced_mode", String(16)),  # None: the detector decides
    Column("forced_by", String(64)),
    Column("forced_at", UtcDateTime),
    # the highest DR-tier epoch seen from any site (backend_client.sites: the fence)
    Column("highest_epoch", BigInteger, nullable=False, default=0, server_default="0"),
    _singleton(),
)

# Backup-mode policy, changed only by a supervisor (audited).  Reduce-only unless
# ``allow_new_exposure``; the kill switch blocks new exposure in every mode.
policy = Table(
    "policy",
    metadata,
    _singleton_id(),
    Column("allow_new_exposure", Boolean, nullable=False, default=False),
    Column("killswitch", Boolean, nullable=False, default=False),
    Column("stale_after_minutes", Integer, nullable=False, default=30),
    Column("updated_by", String(64)),
    Column("updated_at", UtcDateTime),
    _singleton(),
    CheckConstraint("stale_after_minutes > 0", name="stale_positive"),
)

# the last number used in this console's client_order_ids (never reused)
order_id_counter = Table(
    "order_id_counter",
    metadata,
    _singleton_id(),
    Column("last_value", BigInteger, nullable=False, default=0),
    _singleton(),
)
