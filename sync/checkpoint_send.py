"""Sending the audit chain's signed checkpoints to main, the witness (CONTRACT.md:
/audit/...).

The checkpoints are made, signed, queued and checked by the store
(localstore.checkpoints, which never talks to main); this module sends the queue:
oldest first, each with the audit rows since the last one main witnessed; while main is
down they stay queued.  It runs at online login (``at_login``, which also registers the
key), after any online command main answered (``send_queued``), by the runtime while
ONLINE (after each mode change and every ``localstore.checkpoints.MINUTES``), and in
the replay handshake (sync.replay), where main's 409 refuses the replay
(``ChainRefused``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from backend_client import checkpoints as wire_cp
from backend_client import errors as be
from contract.checkpoints import CheckpointSubmission
from localstore import checkpoints

if TYPE_CHECKING:
    from backend_client.client import BackendClient
    from localstore.db import Store

log = logging.getLogger("lifeboat.checkpoints")

T = TypeVar("T")
Purpose = Literal["checkpoint", "replay"]


class ChainRefused(Exception):
    """Main refused a checkpoint because this console's chain does not extend the last
    one it witnessed (409): the local history was rewritten (or is another store's)."""

    def __init__(self, number: int, seq: int, message: str):
        super().__init__(message)
        self.number, self.seq, self.message = number, seq, message


@dataclass
class FlushResult:
    sent: list[int] = field(default_factory=list)  # checkpoint numbers main witnessed now
    queued: int = 0  # still waiting for main
    stopped: str | None = None  # why the rest waits (main unavailable, key not registered ...)


def _submission(cp: dict[str, Any], rows: list[dict[str, Any]], purpose: Purpose) -> CheckpointSubmission:
    claims = {k: cp[k] for k in ("console_id", "number", "seq", "head_hash", "at", "mode", "reason")}
    return CheckpointSubmission.model_validate(
        {
            "checkpoint": {"claims": claims, "public_key": cp["public_key"], "signature": cp["signature"]},
            "rows": rows,
            "purpose": purpose,
        }
    )


async def flush(
    store: Store,
    client: BackendClient,
    *,
    purpose: Purpose = "checkpoint",
    offload: bool = True,
    resend_newest: bool = False,
) -> FlushResult:
    """Send the queued checkpoints to main, oldest first, each with the rows since the
    last one main witnessed.  Main unavailable, or the key not registered: they stay
    queued (``stopped`` says why).  Main refusing one as not extending its last
    witnessed checkpoint: marked refused and ``ChainRefused`` raised.  ``resend_newest``
    (the replay handshake): the newest checkpoint goes with ``purpose`` even when main
    already witnessed it (main answers an identical one with 200) or refused it (main
    judges it again: a refusal marked in the editable store is not taken on trust, and
    neither is its absence)."""

    async def db(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kw) if offload else fn(*args, **kw)

    result = FlushResult()
    pending = await db(checkpoints.pending, store)
    if (
        not pending and resend_newest
    ):  # already witnessed (main answers 200) or refused (main refuses it again)
        last = await db(checkpoints.newest, store)
        if last is not None:
            pending = [last]
    if not pending:
        return result
    # console id -> the row main witnessed up to (checkpoints made before a re-enrolment
    # carry the console's earlier id)
    witnessed_to: dict[str, int] = {}
    try:
        for i, cp in enumerate(pending):
            if cp["console_id"] not in witnessed_to:
                main = await wire_cp.latest(client, cp["console_id"])
                witnessed_to[cp["console_id"]] = main.seq if main is not None else 0
            after = witnessed_to[cp["console_id"]]
            start = after if cp["seq"] > after else cp["seq"]  # an identical resend carries no rows
            rows = await db(checkpoints.rows_between, store, start, cp["seq"])
            sub = _submission(cp, rows, purpose if i == len(pending) - 1 else "checkpoint")
            try:
                witnessed = await wire_cp.submit(client, sub)
            except be.IdempotencyConflict as exc:
                reason = f"main refused it: {exc.message}"
                await db(checkpoints.mark, store, cp["number"], refused=reason)
                log.error(
                    "checkpoint refused by main",
                    extra={"event": "checkpoint_refused", "number": cp["number"], "reason": exc.message},
                )
                raise ChainRefused(cp["number"], cp["seq"], exc.message) from None
            await db(checkpoints.mark, store, cp["number"], witnessed_at=witnessed.witnessed_at)
            result.sent.append(cp["number"])
            witnessed_to[cp["console_id"]] = max(after, cp["seq"])
    except (be.Forbidden, be.Rejected, be.NotFound) as exc:
        # no key registered (or another key), or a main without a witness
        result.stopped = (
            f"main did not take the checkpoints ({exc.message}); an online login registers the key"
        )
    except (be.Unavailable, be.ProtocolError) as exc:
        result.stopped = f"main unavailable: {exc.message}"
    result.queued = len(pending) - len(result.sent)
    return result


# --------------------------------------------------------------------------- the moments that make and send them


async def at_login(store: Store, client: BackendClient) -> FlushResult | None:
    """At an online login, after enrolment (sync.identity): register this home's
    checkpoint key with main, checkpoint the head and send what is queued.  Never fails
    the login: main not taking them now leaves them queued (logged); a refusal is
    marked on the checkpoint, and `audit verify` reports it."""
    checkpoints.forget_keys()  # enrolment may have made a new key in this process
    if store.path is None:
        return None
    home = store.path.parent
    signer = await asyncio.to_thread(checkpoints.signing_key, home)
    if signer is None:
        return None
    try:
        await asyncio.to_thread(checkpoints.remember_key, home, signer[1])
        await wire_cp.register_key(client, store.console_id, signer[1])
        await asyncio.to_thread(checkpoints.make, store, mode="ONLINE", reason="login")
        result = await flush(store, client)
    except ChainRefused as exc:
        log.error(
            "main refused this console's audit checkpoint at login",
            extra={"event": "checkpoint_refused_at_login", "reason": exc.message},
        )
        return None
    except be.BackendError as exc:
        log.warning(
            "checkpoints not sent at login", extra={"event": "checkpoint_login_failed", "reason": exc.message}
        )
        return None
    if result.stopped:
        log.warning(
            "checkpoints still queued", extra={"event": "checkpoint_queued", "reason": result.stopped}
        )
    return result


async def send_queued(store: Store, client: BackendClient) -> None:
    """After an online command that main answered: send what is queued (a local read when
    nothing is).  Never fails the command; a refusal is marked and logged."""
    if store.path is None or not await asyncio.to_thread(checkpoints.pending, store):
        return
    try:
        result = await flush(store, client)
    except ChainRefused as exc:
        log.error(
            "main refused an audit checkpoint", extra={"event": "checkpoint_refused", "reason": exc.message}
        )
        return
    except be.BackendError as exc:
        result = FlushResult(stopped=exc.message)
    if result.stopped:
        log.warning(
            "checkpoints still queued", extra={"event": "checkpoint_queued", "reason": result.stopped}
        )
