"""The console's own reads and records that its service needs, so that console/ holds no
SQL: the local book's reads (scoped to the clients a user may see), the journaled
square-offs still pending, the mode override and backup policy, and what an online login,
a logout and a supervisor's lockout decisions record (with their audit rows).

Functions taking the Store.  Book reads take ``clients``: the client ids a user may
see (None: every client) and ``convert``: what to make of each row while its session
is open (the service passes sync.rows.to_model with the wire model; localstore does
not import sync).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute

from contract.enums import Role
from localstore import audit
from localstore.anchors import Anchors
from localstore.db import Store
from localstore.models import (
    ClientRow,
    ConsoleState,
    InstrumentRow,
    OrderRow,
    Policy,
    PositionRow,
    TradeRow,
    UserRow,
)

if TYPE_CHECKING:
    from localstore.credentials import Attempts

T = TypeVar("T")


# --------------------------------------------------------------------------- users


def last_online_user(store: Store) -> str | None:
    """The last user who logged in online on this console (None: nobody has)."""
    with store.read() as s:
        return s.scalars(
            select(UserRow.user_id)
            .where(UserRow.last_online_login_at.is_not(None))
            .order_by(UserRow.last_online_login_at.desc())
            .limit(1)
        ).first()


def user_scope(store: Store, user_id: str) -> tuple[Role, list[str]] | None:
    """(role, client ids) as recorded at ``user_id``'s last online login; None: never logged in here."""
    with store.read() as s:
        row = s.get(UserRow, user_id)
        if row is None:
            return None
        return row.role, list(json.loads(row.client_ids or "[]"))


def client_known(store: Store, client_id: str) -> bool:
    """Whether the local book (the last BOD) has this client."""
    with store.read() as s:
        return s.get(ClientRow, client_id) is not None


# --------------------------------------------------------------------------- the book


def _rows(
    store: Store,
    q: Select[Any],
    column: InstrumentedAttribute[Any] | None,
    clients: Collection[str] | None,
    convert: Callable[[Any], T],
) -> list[T]:
    if clients is not None and column is not None:
        q = q.where(column.in_(list(clients)))
    with store.read() as s:
        return [convert(r) for r in s.scalars(q)]


def positions(store: Store, clients: Collection[str] | None, convert: Callable[[PositionRow], T]) -> list[T]:
    q = select(PositionRow).order_by(
        PositionRow.client_id, PositionRow.exchange, PositionRow.symbol, PositionRow.product
    )
    return _rows(store, q, PositionRow.client_id, clients, convert)


def orders(store: Store, clients: Collection[str] | None, convert: Callable[[OrderRow], T]) -> list[T]:
    q = select(OrderRow).order_by(OrderRow.created_at, OrderRow.order_id)
    return _rows(store, q, OrderRow.client_id, clients, convert)


def trades(store: Store, clients: Collection[str] | None, convert: Callable[[TradeRow], T]) -> list[T]:
    q = select(TradeRow).order_by(TradeRow.traded_at, TradeRow.trade_id)
    return _rows(store, q, TradeRow.client_id, clients, convert)


def clients(store: Store, clients: Collection[str] | None, convert: Callable[[ClientRow], T]) -> list[T]:
    q = select(ClientRow).order_by(ClientRow.client_id)
    return _rows(store, q, ClientRow.client_id, clients, convert)


def instruments(store: Store, convert: Callable[[InstrumentRow], T]) -> list[T]:
    """Reference data from the last BOD (not scoped: every dealer sees every instrument)."""
    q = select(InstrumentRow).order_by(InstrumentRow.exchange, InstrumentRow.symbol)
    return _rows(store, q, None, None, convert)


def pending_squareoffs(store: Store, client_id: str | None = None) -> dict[tuple[str, ...], dict[str, Any]]:
    """Square-offs journaled and not yet on main (pending or sent), by position
    (client_id, exchange, symbol, product): the newest entry's ``seq``, every ``seqs``,
    the ``quantity`` and ``side`` it was journaled for, and its ``state``."""
    from localstore.core_tables import KIND_SQUARE_OFF, UNFINISHED_STATES
    from localstore.core_tables import journal as j

    q = (
        select(j.c.seq, j.c.client_id, j.c.exchange, j.c.symbol, j.c.product, j.c.state, j.c.payload)
        .where(j.c.kind == KIND_SQUARE_OFF, j.c.state.in_(UNFINISHED_STATES))
        .order_by(j.c.seq)
    )
    if client_id is not None:
        q = q.where(j.c.client_id == client_id)
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    with store.read_core() as conn:
        for r in conn.execute(q):
            p = json.loads(r.payload or "{}")
            key = (
                r.client_id,
                getattr(r.exchange, "value", r.exchange),
                r.symbol,
                getattr(r.product, "value", r.product),
            )
            seqs = out[key]["seqs"] + [r.seq] if key in out else [r.seq]
            out[key] = {
                "seq": r.seq,
                "seqs": seqs,
                "quantity": p.get("quantity_at_intent"),
                "side": p.get("side_at_intent"),
                "state": r.state,
            }
    return out


# --------------------------------------------------------------------------- console settings


def console_mode(store: Store) -> dict[str, Any]:
    """The mode recorded on this console and a supervisor's override: mode, mode_since,
    forced_mode, forced_by, forced_at."""
    with store.read() as s:
        cs = s.get(ConsoleState, 1)
        assert cs is not None  # the migration creates the one row
        return {
            "mode": cs.mode,
            "mode_since": cs.mode_since,
            "forced_mode": cs.forced_mode,
            "forced_by": cs.forced_by,
            "forced_at": cs.forced_at,
        }


def force_mode(store: Store, mode: str | None, *, by: str, now: datetime) -> None:
    """A supervisor's override (None: back to automatic), audited ``mode_change``."""
    with store.write() as s:
        cs = s.get(ConsoleState, 1)
        assert cs is not None  # the migration creates the one row
        before = cs.forced_mode
        cs.forced_mode, cs.forced_by, cs.forced_at = (mode, by if mode else None, now if mode else None)
        audit.append(
            s,
            user_id=by,
            mode=mode or cs.mode,
            action="mode_change",
            payload={"forced_mode": mode, "before": before},
        )


def policy(store: Store) -> dict[str, Any]:
    """The backup policy: allow_new_exposure, killswitch, stale_after_minutes, updated_by, updated_at."""
    with store.read() as s:
        p = s.get(Policy, 1)
        assert p is not None  # the migration creates the one row
        return {
            "allow_new_exposure": p.allow_new_exposure,
            "killswitch": p.killswitch,
            "stale_after_minutes": p.stale_after_minutes,
            "updated_by": p.updated_by,
            "updated_at": p.updated_at,
        }


def set_new_exposure(store: Store, allow: bool, *, by: str, now: datetime) -> None:
    """A supervisor allows new exposure in backup mode, or goes back to reduce-only; audited."""
    with store.write() as s:
        p = s.get(Policy, 1)
        assert p is not None  # the migration creates the one row
        before = p.allow_new_exposure
        p.allow_new_exposure, p.updated_by, p.updated_at = allow, by, now
        audit.append(
            s,
            user_id=by,
            mode="LOCAL",
            action="policy_change",
            payload={"allow_new_exposure": allow, "before": before},
        )


# --------------------------------------------------------------------------- users: an online login


@dataclass(frozen=True)
class OnlineLogin:
    """What an online login records: the user's role and clients, and the offline credential
    (the local verifier and main's signed grant) that offline login checks later."""

    user_id: str
    role: Role
    client_ids: list[str]
    verifier: str
    grant_json: str
    key_id: str
    public_key: str
    valid_until: datetime
    trading_date: date
    issued_at: datetime  # main's time: the server-time watermark, never the local clock
    now: datetime


def record_online_login(
    store: Store, anchors: Anchors, login: OnlineLogin, audit_payload: dict[str, Any]
) -> None:
    """In one write: the user row, the offline credential, main's time seen, the offline
    throttle and lockout lifted (audited ``user_released`` if there were failures), and the
    ``login`` audit row with ``audit_payload``."""
    from localstore import credentials
    from localstore.models import OfflineCredential

    with store.write() as s:
        user = s.get(UserRow, login.user_id) or UserRow(user_id=login.user_id)
        user.role = login.role
        user.client_ids = json.dumps(sorted(login.client_ids))
        user.last_online_login_at = login.now
        s.add(user)
        cred = s.get(OfflineCredential, login.user_id) or OfflineCredential(user_id=login.user_id)
        cred.verifier = login.verifier
        cred.grant_json = login.grant_json
        cred.key_id = login.key_id
        cred.public_key = login.public_key
        cred.valid_until = login.valid_until
        cred.trading_date = login.trading_date
        cred.updated_at = login.now
        s.add(cred)
        credentials.observe_server_time(s, login.issued_at)
        released = credentials.online_login(anchors, login.user_id, login.issued_at)
        if released.count:  # the online login lifts the offline throttle and lockout
            audit.append(
                s,
                user_id=login.user_id,
                mode="ONLINE",
                action="user_released",
                payload={
                    "user": login.user_id,
                    "by": "online login",
                    "failures": released.count,
                    "was_locked": released.locked,
                },
            )
        audit.append(s, user_id=login.user_id, mode="ONLINE", action="login", payload=audit_payload)


def record_logout(store: Store, user_id: str, keyring: str) -> None:
    """A logout, audited with what happened to the saved token (localstore.secrets.delete_token)."""
    with store.write() as s:
        audit.append(s, user_id=user_id, mode="ONLINE", action="logout", payload={"keyring": keyring})


def record_event(store: Store, *, user_id: str, mode: str, action: str, payload: dict[str, Any]) -> None:
    """One audit row in its own write (Core: no ORM)."""
    with store.write_core() as conn:
        audit.append_core(conn, user_id=user_id, mode=mode, action=action, payload=payload)


def release_user(store: Store, anchors: Anchors, user_id: str, *, by: str) -> Attempts:
    """A supervisor lifts ``user_id``'s offline lockout and failure delay (in the anchors),
    audited ``user_released`` in the same write; returns the attempts as they were."""
    from localstore import credentials

    with store.write_core() as conn:
        before = credentials.clear_attempts(anchors, user_id)
        audit.append_core(
            conn,
            user_id=by,
            mode="LOCAL",
            action="user_released",
            payload={"user": user_id, "by": by, "failures": before.count, "was_locked": before.locked},
        )
    return before


def set_lockout(store: Store, anchors: Anchors, n: int, *, by: str) -> None:
    """A supervisor sets how many wrong passwords in a row lock a user offline (0: never),
    kept in the anchors; audited ``lockout_change`` in the same write."""
    from localstore import credentials

    with store.write_core() as conn:
        before = credentials.lock_after(anchors)
        credentials.set_lock_after(anchors, n)
        audit.append_core(
            conn,
            user_id=by,
            mode="LOCAL",
            action="lockout_change",
            payload={"lock_after": n, "before": before},
        )
