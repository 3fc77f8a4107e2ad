"""The replay lease: one replayer per store.

Why a lease row and not a lock file: the ``replay_lease`` row is taken in a BEGIN
IMMEDIATE transaction and renewed in the same transaction as every state move of the
replay (localstore.replay_store.move_entry), so a replayer that lost its lease cannot
commit anything.  A lease whose holder is a dead process on this host is taken over at
once; any other waits for its expiry (``LEASE_TTL_S`` after its last renewal).
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta

from contract import clock
from localstore import replay_store
from localstore.db import Store

log = logging.getLogger("lifeboat.replay")

LEASE_TTL_S = 30.0


def default_holder(console_id: str) -> str:
    """Who replays: console id, process id and host (enough to find and judge it)."""
    return f"{console_id}/{os.getpid()}@{socket.gethostname()}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer runs."""
    try:
        rest = holder.rsplit("/", 1)[1]
        pid_text, host = rest.split("@", 1)
        pid = int(pid_text)
    except (IndexError, ValueError):
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_lease(
    store: Store, holder: str, ttl_s: float = LEASE_TTL_S, now: datetime | None = None
) -> tuple[bool, str | None, datetime | None]:
    """Try to take the replay lease (BEGIN IMMEDIATE).  Returns (taken, holder, since):
    on refusal the current holder and since when it holds it."""
    now = now or clock.utcnow()
    taken, who, since, taken_from = replay_store.claim_lease(
        store, holder, now, now + timedelta(seconds=ttl_s), holder_is_dead
    )
    if taken_from is not None:
        log.warning("replay lease taken over", extra={"event": "replay_lease_takeover", "from": taken_from})
    return taken, who, since


def release_lease(store: Store, holder: str) -> None:
    replay_store.release_lease(store, holder)
