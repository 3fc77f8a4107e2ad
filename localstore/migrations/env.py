"""Alembic environment of the local store.

Normally run by ``localstore.db.open_store``, which hands over an open connection
already inside a write transaction (``config.attributes["connection"]``), so the
integrity checks, the migration and the first rows share the store's pragmas and
locking.  Also usable from the ``alembic`` CLI with ``localstore/alembic.ini``
and ``-x url=sqlite:///path`` (for writing new revisions).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from localstore.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database to migrate: pass -x url=... or set sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported for the local store")
run_migrations_online()
