"""Initial schema: every table of the local store (money as BIGINT 1/10,000 units, UTC times).

Revision ID: 0001
Revises: (none: the first revision creates everything)
Create Date: 2026-11-30 10:52:12.811397
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_head',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('last_id', sa.Integer(), nullable=False),
        sa.Column('last_hash', sa.String(length=64), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_audit_head_singleton')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head')),
    )
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('at', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=True),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('prev_hash', sa.String(length=64), nullable=False),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    op.create_table(
        'clients',
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('dealer_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('client_id', name=op.f('pk_clients')),
    )
    op.create_table(
        'console_identity',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('console_id', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('id = 1', name=op.f('ck_console_identity_singleton')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_console_identity')),
        sa.UniqueConstraint('console_id', name=op.f('uq_console_identity_console_id')),
    )
    op.create_table(
        'instruments',
        sa.Column(
            'exchange',
            sa.Enum('NSE', 'BSE', 'NFO', name='exchange', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('symbol', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('instrument_type', sa.String(length=8), nullable=False),
        sa.Column('lot_size', sa.Integer(), nullable=False),
        sa.Column('tick_size', sa.BigInteger(), nullable=False),
        sa.Column('last_price', sa.BigInteger(), nullable=False),
        sa.Column('lower_band', sa.BigInteger(), nullable=False),
        sa.Column('upper_band', sa.BigInteger(), nullable=False),
        sa.Column('freeze_quantity', sa.Integer(), nullable=False),
        sa.Column('previous_close', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('exchange', 'symbol', name=op.f('pk_instruments')),
    )
    op.create_table(
        'journal',
        sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('trading_date', sa.Date(), nullable=False),
        sa.Column('console_id', sa.String(length=16), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column(
            'kind',
            sa.Enum(
                'PLACE',
                'MODIFY',
                'CANCEL',
                'SQUARE_OFF',
                name='journal_kind',
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column('client_order_id', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column(
            'exchange',
            sa.Enum('NSE', 'BSE', 'NFO', name='exchange', native_enum=False, create_constraint=True),
            nullable=True,
        ),
        sa.Column('symbol', sa.String(length=40), nullable=True),
        sa.Column(
            'product',
            sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True),
            nullable=True,
        ),
        sa.Column('target_order_id', sa.String(length=64), nullable=True),
        sa.Column('target_client_order_id', sa.String(length=64), nullable=True),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column(
            'state',
            sa.Enum(
                'pending',
                'sent',
                'applied',
                'moot',
                'rejected',
                'conflict',
                'held',
                name='journal_state',
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column('state_reason', sa.Text(), nullable=True),
        sa.Column('main_order_id', sa.String(length=64), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('attempts >= 0', name=op.f('ck_journal_attempts_non_negative')),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_journal')),
        sa.UniqueConstraint('client_order_id', name=op.f('uq_journal_client_order_id')),
    )
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.create_index('ix_journal_state_seq', ['state', 'seq'], unique=False)

    op.create_table(
        'login_throttle',
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('next_allowed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_login_throttle')),
    )
    op.create_table(
        'orders',
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('client_order_id', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column(
            'exchange',
            sa.Enum('NSE', 'BSE', 'NFO', name='exchange', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('symbol', sa.String(length=40), nullable=False),
        sa.Column(
            'side',
            sa.Enum('BUY', 'SELL', name='side', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('filled_quantity', sa.Integer(), nullable=False),
        sa.Column('average_price', sa.BigInteger(), nullable=False),
        sa.Column(
            'product',
            sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column(
            'order_type',
            sa.Enum(
                'MARKET', 'LIMIT', 'SL', 'SL-M', name='order_type', native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column('price', sa.BigInteger(), nullable=True),
        sa.Column('trigger_price', sa.BigInteger(), nullable=True),
        sa.Column(
            'validity',
            sa.Enum('DAY', 'IOC', name='validity', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('disclosed_quantity', sa.Integer(), nullable=True),
        sa.Column(
            'status',
            sa.Enum(
                'OPEN',
                'TRIGGER_PENDING',
                'COMPLETE',
                'CANCELLED',
                'REJECTED',
                name='order_status',
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column('status_reason', sa.Text(), nullable=True),
        sa.Column('placed_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            'source',
            sa.Enum(
                'bod', 'stream', 'local', name='record_source', native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column('updated_seq', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('order_id', name=op.f('pk_orders')),
        sa.UniqueConstraint('client_order_id', name=op.f('uq_orders_client_order_id')),
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_client_status', ['client_id', 'status'], unique=False)

    op.create_table(
        'positions',
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column(
            'exchange',
            sa.Enum('NSE', 'BSE', 'NFO', name='exchange', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('symbol', sa.String(length=40), nullable=False),
        sa.Column(
            'product',
            sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('net_quantity', sa.Integer(), nullable=False),
        sa.Column('average_price', sa.BigInteger(), nullable=False),
        sa.Column('last_price', sa.BigInteger(), nullable=False),
        sa.Column('realised_pnl', sa.BigInteger(), nullable=False),
        sa.Column('mtm', sa.BigInteger(), nullable=False),
        sa.Column('buy_quantity', sa.Integer(), nullable=False),
        sa.Column('sell_quantity', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            'source',
            sa.Enum(
                'bod', 'stream', 'local', name='record_source', native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column('updated_seq', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('client_id', 'exchange', 'symbol', 'product', name=op.f('pk_positions')),
    )
    op.create_table(
        'reconciliation_report',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('json', sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_report')),
    )
    op.create_table(
        'replay_lease',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=True),
        sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('id = 1', name=op.f('ck_replay_lease_singleton')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_replay_lease')),
    )
    op.create_table(
        'sync_state',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('trading_date', sa.Date(), nullable=True),
        sa.Column('bod_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('bod_seq', sa.BigInteger(), nullable=True),
        sa.Column('last_event_seq', sa.BigInteger(), nullable=True),
        sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_applied_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('clock_watermark', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint('id = 1', name=op.f('ck_sync_state_singleton')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_state')),
    )
    op.create_table(
        'trades',
        sa.Column('trade_id', sa.String(length=64), nullable=False),
        sa.Column('order_id', sa.String(length=64), nullable=False),
        sa.Column('client_order_id', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column(
            'exchange',
            sa.Enum('NSE', 'BSE', 'NFO', name='exchange', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('symbol', sa.String(length=40), nullable=False),
        sa.Column(
            'side',
            sa.Enum('BUY', 'SELL', name='side', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column(
            'product',
            sa.Enum('MIS', 'NRML', 'CNC', name='product', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('price', sa.BigInteger(), nullable=False),
        sa.Column('traded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            'source',
            sa.Enum(
                'bod', 'stream', 'local', name='record_source', native_enum=False, create_constraint=True
            ),
            nullable=False,
        ),
        sa.Column('updated_seq', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('trade_id', name=op.f('pk_trades')),
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index('ix_trades_client_id', ['client_id'], unique=False)

    op.create_table(
        'users',
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column(
            'role',
            sa.Enum('dealer', 'supervisor', 'viewer', name='role', native_enum=False, create_constraint=True),
            nullable=False,
        ),
        sa.Column('client_ids', sa.Text(), nullable=False),
        sa.Column('last_online_login_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_users')),
    )
    op.create_table(
        'client_limits',
        sa.Column('client_id', sa.String(length=32), nullable=False),
        sa.Column('max_order_value', sa.BigInteger(), nullable=False),
        sa.Column('max_gross_exposure', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ['client_id'],
            ['clients.client_id'],
            name=op.f('fk_client_limits_client_id_clients'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('client_id', name=op.f('pk_client_limits')),
    )
    op.create_table(
        'offline_credentials',
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('verifier', sa.Text(), nullable=False),
        sa.Column('grant_json', sa.Text(), nullable=False),
        sa.Column('key_id', sa.String(length=64), nullable=False),
        sa.Column('public_key', sa.Text(), nullable=False),
        sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('trading_date', sa.Date(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['user_id'],
            ['users.user_id'],
            name=op.f('fk_offline_credentials_user_id_users'),
            ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_offline_credentials')),
    )


def downgrade() -> None:
    op.drop_table('offline_credentials')
    op.drop_table('client_limits')
    op.drop_table('users')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index('ix_trades_client_id')

    op.drop_table('trades')
    op.drop_table('sync_state')
    op.drop_table('replay_lease')
    op.drop_table('reconciliation_report')
    op.drop_table('positions')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_client_status')

    op.drop_table('orders')
    op.drop_table('login_throttle')
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_state_seq')

    op.drop_table('journal')
    op.drop_table('instruments')
    op.drop_table('console_identity')
    op.drop_table('clients')
    op.drop_table('audit_log')
    op.drop_table('audit_head')
