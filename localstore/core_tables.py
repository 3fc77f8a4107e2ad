"""The store's tables as plain Core ``Table`` objects, for the backup CLI path.

Why a second description of tables that localstore.models already declares: a
backup-mode command (``lifeboat squareoff`` with main down: probe, offline login,
one journal transaction, answer, acknowledgement) is timed end to end (bench P3,
goal 1.5 s), and importing the declarative models pulls in ``sqlalchemy.orm``
(about 0.3 s here, most of what such a run spends on its own imports).  These
tables carry only the columns the backup path, offline login and the audit append
read or write, with the SAME column types as the models (exact money, aware UTC
times, enums stored by value), so values round-trip identically.  They are never
used to create or migrate anything (Alembic and the models own the schema), and
tests/test_perf_paths.py keeps every column here equal, by name and type, to the
model's.

The journal's kind and state columns are plain strings here, spelled as stored
(the values of localstore.models.JournalKind / JournalState, which are str enums
and compare equal to these strings); ``KIND_*`` and ``STATE_*`` name them.
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, Boolean, Column, Date, Integer, MetaData, String, Table, Text
from sqlalchemy import Enum as SAEnum

from contract.enums import Exchange, OrderStatus, OrderType, Product, Role, Side, Validity
from localstore.coltypes import Money, UtcDateTime
from localstore.journal_states import FINAL_STATES, STATE_PENDING, STATE_SENT, UNFINISHED_STATES  # noqa: F401

# JournalKind / JournalState values as stored (a test keeps them equal to the models' enums)
KIND_PLACE, KIND_MODIFY, KIND_CANCEL, KIND_SQUARE_OFF = "PLACE", "MODIFY", "CANCEL", "SQUARE_OFF"
GENESIS_HASH = "0" * 64  # prev_hash of the first audit row (equal to localstore.models.GENESIS_HASH)


def _enum(cls: type[enum.Enum], name: str) -> SAEnum:
    """The models' enum column type (VARCHAR holding the enum's value), without DDL."""
    return SAEnum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=False,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
        length=max(len(m.value) for m in cls),
    )


metadata = MetaData()  # private: never used for create_all

journal = Table(
    "journal",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("trading_date", Date, nullable=False),
    Column("console_id", String(16), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("kind", String(10), nullable=False),
    Column("client_order_id", String(64), nullable=False),
    Column("client_id", String(32), nullable=False),
    Column("exchange", _enum(Exchange, "exchange")),
    Column("symbol", String(40)),
    Column("product", _enum(Product, "product")),
    Column("target_order_id", String(64)),
    Column("target_client_order_id", String(64)),
    Column("payload", Text, nullable=False),
    Column("state", String(9), nullable=False),
    Column("state_reason", Text),
    Column("main_order_id", String(64)),
    Column("attempts", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("acknowledged_at", UtcDateTime),
)

order_id_counter = Table(
    "order_id_counter",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_value", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", String(40), nullable=False),
    Column("user_id", String(64)),
    Column("mode", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("count", Integer, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("console_id", String(16), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),
    Column("at", String(40), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("signature", String(128), nullable=False),
    Column("witnessed_at", UtcDateTime),
    Column("refused_reason", Text),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("clock_watermark", UtcDateTime),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("role", _enum(Role, "role"), nullable=False),
    Column("client_ids", Text, nullable=False),
    Column("last_online_login_at", UtcDateTime),
)

offline_credentials = Table(
    "offline_credentials",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("verifier", Text, nullable=False),
    Column("grant_json", Text, nullable=False),
    Column("public_key", Text, nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(32), primary_key=True),
)

client_limits = Table(
    "client_limits",
    metadata,
    Column("client_id", String(32), primary_key=True),
    Column("max_order_value", Money(), nullable=False),
)

instruments = Table(
    "instruments",
    metadata,
    Column("exchange", _enum(Exchange, "exchange"), primary_key=True),
    Column("symbol", String(40), primary_key=True),
    Column("lot_size", Integer, nullable=False),
    Column("tick_size", Money(), nullable=False),
    Column("last_price", Money(), nullable=False),
    Column("lower_band", Money(), nullable=False),
    Column("upper_band", Money(), nullable=False),
    Column("freeze_quantity", Integer, nullable=False),
)

positions = Table(
    "positions",
    metadata,
    Column("client_id", String(32), primary_key=True),
    Column("exchange", _enum(Exchange, "exchange"), primary_key=True),
    Column("symbol", String(40), primary_key=True),
    Column("product", _enum(Product, "product"), primary_key=True),
    Column("net_quantity", Integer, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("client_order_id", String(64), nullable=False),
    Column("client_id", String(32), nullable=False),
    Column("exchange", _enum(Exchange, "exchange"), nullable=False),
    Column("symbol", String(40), nullable=False),
    Column("side", _enum(Side, "side"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("filled_quantity", Integer, nullable=False),
    Column("product", _enum(Product, "product"), nullable=False),
    Column("order_type", _enum(OrderType, "order_type"), nullable=False),  # a backup MODIFY checks the
    Column("price", Money()),  # order's resulting shape (contract.ordershape)
    Column("trigger_price", Money()),
    Column("validity", _enum(Validity, "validity"), nullable=False),
    Column("disclosed_quantity", Integer),
    Column("status", _enum(OrderStatus, "order_status"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

policy = Table(
    "policy",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("allow_new_exposure", Boolean, nullable=False),
    Column("killswitch", Boolean, nullable=False),
    Column("updated_by", String(64)),
    Column("updated_at", UtcDateTime),
)
