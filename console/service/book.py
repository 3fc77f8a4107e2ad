"""The book: start-of-day from main, main's live positions and orders, and the local
book's reads (scoped to the current user's clients) and journal views.

Functions of the Service (console.service.core), which exposes them as its methods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from backend_client import errors as be
from console.service.errors import (
    ADVICE_LOGIN,
    Denied,
    MainUnavailable,
    NotLoggedIn,
    RejectedByMain,
    translate,
)

if TYPE_CHECKING:
    from console.service.core import Service
    from contract import wire
    from sync.bod import BodResult

log = logging.getLogger("lifeboat.service")


async def sync_bod(svc: Service, password: str | None = None) -> BodResult:
    from sync.bod import replace_book

    user = svc.current_user()
    try:
        async with svc.session_client(password) as c:
            snap = await c.bod()
        return await asyncio.to_thread(
            replace_book, svc.store, snap, mode="ONLINE", reason="lifeboat sync bod", user_id=user
        )
    except be.ProtocolError as exc:  # main's fault (exit 5); replace_book had not begun, or rolled back
        refused = MainUnavailable(
            f"the main system's start-of-day snapshot was refused whole and nothing was "
            f"stored (the previous snapshot is kept): {exc.message}"
        )
        refused.code = "snapshot_refused"
        raise refused from exc
    except be.BackendError as exc:  # translated here, as before the boundary (reason_of's causes)
        raise translate(exc) from exc


async def positions(
    svc: Service, client_id: str | None = None, *, local: bool = False, password: str | None = None
) -> list[wire.Position]:
    if local:
        return local_positions(svc, client_id)
    try:
        async with svc.session_client(password) as c:
            return await c.positions(client_id)
    except be.BackendError as exc:  # translated here, as before the boundary (reason_of's causes)
        raise translate(exc) from exc


async def orders(
    svc: Service, client_id: str | None = None, *, local: bool = False, password: str | None = None
) -> list[wire.Order]:
    if local:
        return local_orders(svc, client_id)
    try:
        async with svc.session_client(password) as c:
            return await c.orders(client_id)
    except be.BackendError as exc:  # translated here, as before the boundary (reason_of's causes)
        raise translate(exc) from exc


def _visible(svc: Service, client_id: str | None) -> list[str] | None:
    """The clients the current user may see in the local book, narrowed to ``client_id``
    when one is asked for (None: every client, for a supervisor or viewer).  A console
    shared by two dealers keeps one book; each sees only their own clients in it (as
    recorded at their last online login)."""
    from contract.enums import Role
    from localstore import book

    user = svc.current_user()
    recorded = book.user_scope(svc.store, user)
    if recorded is None:
        raise NotLoggedIn(
            f"{user} has never logged in on this console", advice=ADVICE_LOGIN, advice_user=user
        )
    role, clients = recorded
    scope = clients if role == Role.DEALER else None
    if client_id is None:
        return scope
    if not book.client_known(svc.store, client_id):
        raise RejectedByMain(
            f"unknown client {client_id!r} in the local book (not in your scope, or no BOD yet)"
        )
    if scope is not None and client_id not in scope:
        raise Denied(f"client {client_id} is not in {svc.user}'s scope")
    return [client_id]


def local_positions(svc: Service, client_id: str | None = None) -> list[wire.Position]:
    from contract import wire
    from localstore import book
    from sync.rows import to_model

    return book.positions(svc.store, _visible(svc, client_id), lambda r: to_model(r, wire.Position))


def local_orders(svc: Service, client_id: str | None = None) -> list[wire.Order]:
    from contract import wire
    from localstore import book
    from sync.rows import to_model

    return book.orders(svc.store, _visible(svc, client_id), lambda r: to_model(r, wire.Order))


def local_trades(svc: Service, client_id: str | None = None) -> list[wire.Trade]:
    from contract import wire
    from localstore import book
    from sync.rows import to_model

    return book.trades(svc.store, _visible(svc, client_id), lambda r: to_model(r, wire.Trade))


def local_instruments(svc: Service) -> list[wire.Instrument]:
    """Reference data from the last BOD (not scoped: every dealer sees every instrument)."""
    from contract import wire
    from localstore import book
    from sync.rows import to_model

    return book.instruments(svc.store, lambda r: to_model(r, wire.Instrument))


def local_clients(svc: Service) -> list[wire.Client]:
    from contract import wire
    from localstore import book
    from sync.rows import to_model

    return book.clients(svc.store, _visible(svc, None), lambda r: to_model(r, wire.Client))


def replay_backlog(svc: Service) -> int:
    """Journal entries still to be sent to main (pending or sent): the rest of a replay."""
    from sync.detector_store import replay_work

    return replay_work(svc.store)


def journal_entries(
    svc: Service, *, limit: int = 1000, unfinished_only: bool = False
) -> list[dict[str, Any]]:
    from sync.trading import journal

    with svc.store.read() as s:
        return journal.entries(s, limit=limit, unfinished_only=unfinished_only)


def pending_squareoffs(svc: Service, client_id: str | None = None) -> dict[tuple[str, ...], dict[str, Any]]:
    """Square-offs journaled and not yet on main, by position (localstore.book.pending_squareoffs)."""
    from localstore import book

    return book.pending_squareoffs(svc.store, client_id)
