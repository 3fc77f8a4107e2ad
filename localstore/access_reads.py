"""What offline login and a console's enrolment read from the store (sync.offline and
sync.identity decide): a user's offline credential and stored scope, the store's own
console id, whether anyone ever logged in online here.  Core statements built once:
offline login is on the path of a backup action (bench P3), no ORM."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from localstore.core_tables import offline_credentials as _CREDS
from localstore.core_tables import users as _USERS

_CREDENTIAL = select(_CREDS.c.verifier, _CREDS.c.grant_json, _CREDS.c.public_key).where(
    _CREDS.c.user_id == bindparam("c_user")
)
_SCOPE = select(_USERS.c.role, _USERS.c.client_ids).where(_USERS.c.user_id == bindparam("c_user"))
_READ_ID = text("SELECT console_id FROM console_identity WHERE id = 1")
_USED = text("SELECT EXISTS (SELECT 1 FROM offline_credentials)")


def credential(conn: Connection, user_id: str) -> Any:
    """(verifier, grant_json, public_key) of ``user_id``'s offline credential, or None."""
    return conn.execute(_CREDENTIAL, {"c_user": user_id}).first()


def scope(conn: Connection, user_id: str) -> Any:
    """(role, client_ids as stored JSON) of ``user_id``'s user row, or None."""
    return conn.execute(_SCOPE, {"c_user": user_id}).first()


def console_id(conn: Connection) -> str:
    """The console id the store holds."""
    return conn.execute(_READ_ID).scalar_one()


def anyone_logged_in(conn: Connection) -> bool:
    """Somebody logged in online with this store (an offline credential is kept)."""
    return bool(conn.execute(_USED).scalar())
