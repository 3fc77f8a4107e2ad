"""The service layer: the one API that the CLI and the TUI both call.

Neither face touches httpx or SQLAlchemy: they call these methods and get wire
models, plain dataclasses, or one of the ``ServiceError`` subclasses below (each
knows its CLI exit code).  Heavy modules are imported in the methods that need
them, not at import time and not in console/cli.py,
so `lifeboat --help` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from backend_client import errors as be
from console import eventlog
from console.exitcodes import ExitCode
from contract import clock
from localstore.db import Store, open_store
from localstore.errors import StoreError
from localstore.paths import data_dir, privacy_warnings, store_path

# Heavy modules (pydantic wire models, the ORM models, httpx client, cryptography,
# keyring) are imported inside the methods that use them: `lifeboat status` runs
# on Core reads and one probe and must start fast (bench P7).
if TYPE_CHECKING:
    from backend_client.client import BackendClient
    from contract import wire
    from sync.bod import BodResult

DEFAULT_BACKEND = "http://127.0.0.1:8700"
log = logging.getLogger("lifeboat.service")


class ServiceError(Exception):
    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotLoggedIn(ServiceError):
    exit_code = ExitCode.DENIED


class Denied(ServiceError):
    exit_code = ExitCode.DENIED


class RejectedByMain(ServiceError):
    exit_code = ExitCode.REJECTED


class MainUnavailable(ServiceError):
    exit_code = ExitCode.UNAVAILABLE


class StoreProblem(ServiceError):
    """The store was refused.  Corrupt is an integrity failure (exit 8); a full or failing
    disk is not (exit 1, reason disk_full / io_error): its store is intact and must be kept."""

    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        if kind != "other":
            self.code = kind  # the --json reason (else the class name: store_problem)
        if kind == "corrupt":
            self.exit_code = ExitCode.INTEGRITY


class Refused(ServiceError):
    """Refused locally by policy or a risk check (exit 4); ``code`` says which rule."""

    exit_code = ExitCode.REJECTED

    def __init__(self, message: str, code: str = "refused"):
        super().__init__(message)
        self.code = code


class NotAccepted(ServiceError):
    """The journal write failed: the action was NOT accepted and nothing was written."""

    exit_code = ExitCode.UNEXPECTED


_DENIED_CODES = frozenset({"out_of_scope", "read_only", "supervisor_only"})


def translate(exc: BaseException) -> ServiceError:
    """Backend and store errors as the service's own, with a message for a person."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, be.Unauthorized):
        return Denied(f"the main system refused the session: {exc.message}")
    if isinstance(exc, be.Forbidden):
        return Denied(f"not allowed: {exc.message}")
    if isinstance(exc, (be.Rejected, be.IdempotencyConflict, be.NotFound)):
        return RejectedByMain(f"the main system rejected it: {exc.message}")
    if isinstance(exc, be.Unavailable):
        return MainUnavailable(f"the main system is unavailable: {exc.message}")
    if isinstance(exc, be.ProtocolError):
        return MainUnavailable(f"the main system answered something unreadable: {exc.message}")
    if isinstance(exc, StoreError):
        return StoreProblem(str(exc), exc.kind)
    from localstore.db import disk_failure
    from sync.identity import NotEnrolled
    from sync.offline import BackupImpossible, OfflineDenied
    from sync.trading.journal import JournalWriteFailed
    from sync.trading.policy import Refusal

    if isinstance(exc, Refusal):
        if exc.code in _DENIED_CODES:
            return Denied(f"not allowed: {exc.message}")
        return Refused(f"refused ({exc.code}): {exc.message}", exc.code)
    if isinstance(exc, OfflineDenied):
        denied = Denied(f"offline login refused: {exc.message}")
        if exc.reason:  # the --json reason: locked, throttled
            denied.code = exc.reason
        return denied
    if isinstance(
        exc, NotEnrolled
    ):  # this console's identity is not established on this home (sync.identity)
        return Denied(f"refused: {exc.message}")
    if isinstance(exc, BackupImpossible):
        if exc.local:  # a supervisor's decision or an unlock, in any mode: an authentication problem
            return Denied(f"not allowed: {exc.message}")
        return MainUnavailable(f"the main system is unavailable and {exc.message}")
    disk = disk_failure(exc)  # a write the disk refused (full, I/O error): say so, with figures
    if disk is not None and isinstance(exc, JournalWriteFailed):
        return NotAccepted(f"NOT accepted, nothing was journaled: {disk.sentence()}")
    if disk is not None:
        return NotAccepted(f"NOT accepted, nothing was done: {disk.sentence()}")
    if isinstance(exc, JournalWriteFailed):
        return NotAccepted(f"NOT accepted: {exc}; nothing was journaled, try again once the disk is fixed")
    import sqlite3

    from sqlalchemy.exc import OperationalError

    # a commit outside the journal (login audit ...) failed the same way; the journal's hot
    # statements run on the sqlite3 cursor (localstore.prepared), so its own errors come raw
    if isinstance(exc, (OperationalError, sqlite3.OperationalError)):
        why = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return NotAccepted(f"NOT accepted: the local store could not commit ({why}); nothing was done")
    return ServiceError(f"{type(exc).__name__}: {exc}")


def _fingerprints(keys: dict[str, str]) -> dict[str, str]:
    """{key_id: the first 16 hex digits of SHA-256 of the raw public key}: grant keys as the audit names them."""
    import base64
    import hashlib

    return {k: hashlib.sha256(base64.b64decode(v)).hexdigest()[:16] for k, v in sorted(keys.items())}


@dataclass
class ModeDecision:
    mode: str  # ONLINE, BACKUP, RECOVERING (SUSPECT only from a runtime)
    probe: object  # backend_client.detector.ProbeResult
    forced: str | None


@dataclass
class LoginResult:
    user: wire.UserInfo
    token_kept: bool
    grant_valid_until: datetime
    console_id: str


# --------------------------------------------------------------------------- trading (issue 4)


@dataclass
class ActionResult:
    """What one trading command did, for both faces.  ``journal_seqs`` are the entries
    to acknowledge once the answer has been shown (``Service.acknowledge``)."""

    action: str
    mode: str
    user: str
    legs: list = field(default_factory=list)
    cancels: list = field(default_factory=list)
    order: dict | None = None
    journal_seqs: list = field(default_factory=list)
    dry_run: bool = False

    @property
    def rejected(self) -> bool:
        """Not all done: a leg or the order refused, or a leg main never answered or was not sent."""
        return any(leg.get("outcome") in ("rejected", "unknown", "not_sent") for leg in self.legs) or (
            self.order is not None and self.order.get("outcome") == "rejected"
        )

    @property
    def cut_off(self) -> bool:
        """Not all done only because main stopped answering mid-way (no leg was refused): the
        main system's failure (exit 5), not a rejection."""
        outcomes = [leg.get("outcome") for leg in self.legs]
        return (
            self.rejected
            and "rejected" not in outcomes
            and not (self.order is not None and self.order.get("outcome") == "rejected")
        )

    @property
    def exit_code(self) -> int:
        if self.cut_off:
            return int(ExitCode.UNAVAILABLE)
        return int(ExitCode.REJECTED if self.rejected else ExitCode.OK)

    def as_dict(self) -> dict:
        d = {"action": self.action, "mode": self.mode, "user": self.user, "dry_run": self.dry_run}
        if self.order is not None:
            d["order"] = self.order
        if self.action in ("squareoff", "killswitch"):
            d["legs"] = self.legs
            d["cancels"] = self.cancels
        d["outcome"] = (
            "incomplete"
            if self.cut_off
            else "rejected"
            if self.rejected
            else ("dry_run" if self.dry_run else ("journaled" if self.mode != "ONLINE" else "done"))
        )
        d[
            "ok"
        ] = not self.rejected  # as in the failure object {"ok": false, "error": ...}: one key for scripts
        return d


def _target_dict(t) -> dict:
    if isinstance(t, dict):
        return t
    return {
        "client_id": t.client_id,
        "exchange": t.exchange,
        "symbol": t.symbol,
        "order_id": t.order_id,
        "client_order_id": t.client_order_id,
        "journaled_order": t.journaled,
    }


class TradingMixin:
    """place / modify / cancel / square-off / kill switch / mode / policy, routed by mode."""

    async def _actor(self, mode: str, password: str | None, c=None):
        """Backup and RECOVERING: offline login (the signed grant gives the scope).
        ONLINE: the main system's session (its role and clients, kept at login)."""
        from sync import offline
        from sync.trading.desk import Actor

        user = self.current_user()
        eventlog.set_context(user=user)
        if mode != "ONLINE":
            if password is None:
                raise NotLoggedIn(
                    "the main system is down: offline login needs your password "
                    "(--password-stdin, or run on a terminal)"
                )
            sess = await asyncio.to_thread(
                offline.login, self.store, user, password, mode=mode, early=self._early_check
            )
            return Actor(user, sess.role, sess.client_ids, sess.trading_date)
        scope = offline.stored_scope(self.store, user)
        if scope is None:
            raise NotLoggedIn(f"{user} has not logged in on this console: run `lifeboat login --user {user}`")
        role, clients = scope
        td = (
            self._mode.probe.trading_date
            if self._mode and self._mode.probe.trading_date
            else clock.today_ist()
        )
        return Actor(user, role, frozenset(clients), td)

    def _log_result(self, res: ActionResult) -> None:
        for leg in res.legs or ([res.order] if res.order else []):
            log.info(
                res.action,
                extra={
                    "event": res.action,
                    "client_order_id": leg.get("client_order_id"),
                    "outcome": leg.get("outcome"),
                    "client_id": leg.get("client_id"),
                },
            )

    async def _route(self, password, online, backup, action: str) -> ActionResult:
        decision = await self.decide_mode()
        try:
            if decision.mode == "ONLINE":
                async with self.session_client(password) as c:
                    actor = await self._actor("ONLINE", password, c)
                    res = await online(c, actor)
            else:
                actor = await self._actor(decision.mode, password)
                res = await asyncio.to_thread(backup, actor, decision.mode)
        except ServiceError:
            raise
        except Exception as exc:  # backend, policy, offline-login and journal errors as the service's own
            if decision.mode == "ONLINE" and isinstance(exc, (be.Unavailable, be.ProtocolError)):
                kind = exc.kind if isinstance(exc, be.Unavailable) else "protocol"
                for hook in self.request_error_hooks:  # the console's runtime hears it (detector input)
                    hook(kind, exc.message)
            problem = translate(exc)
            if type(problem) is ServiceError:  # not one we know: let the face log it as unexpected
                raise
            raise problem from exc
        res.user = actor.user_id
        self._log_result(res)
        return res

    def acknowledge(self, result: ActionResult) -> None:
        """Call once the answer has been shown: stamps acknowledged_at (never un-accepts)."""
        from sync.trading import journal

        try:
            journal.acknowledge(self.store, result.journal_seqs)
        except Exception as exc:  # the entries are durable; only the stamp is missing
            eventlog.log_error("acknowledge_failed", exc)

    # ------------------------------------------------------------------ one order

    async def place(
        self,
        ticket,
        *,
        validity: str = "DAY",
        disclosed_quantity: int | None = None,
        password: str | None = None,
    ) -> ActionResult:
        from contract import wire
        from sync.trading import desk

        async def online(c, actor):
            from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

            order = await online_desk.place(
                self.store, c, actor, ticket, validity=validity, disclosed_quantity=disclosed_quantity
            )
            o = order.model_dump(mode="json")
            o["outcome"] = (
                "rejected" if order.status is wire.OrderStatus.REJECTED else order.status.value.lower()
            )
            return ActionResult("order_place", "ONLINE", actor.user_id, order=o)

        def backup(actor, mode):
            r = desk.place(
                self.store, actor, ticket, mode=mode, validity=validity, disclosed_quantity=disclosed_quantity
            )
            o = {
                "client_order_id": r.client_order_id,
                "seq": r.seq,
                "client_id": ticket.client_id,
                "exchange": ticket.exchange,
                "symbol": ticket.symbol.upper(),
                "side": ticket.side.value,
                "quantity": ticket.quantity,
                "product": ticket.product,
                "outcome": "journaled",
            }
            return ActionResult("order_place", mode, actor.user_id, order=o, journal_seqs=[r.seq])

        return await self._route(password, online, backup, "order_place")

    async def modify(
        self,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        quantity: int | None = None,
        price=None,
        trigger_price=None,
        password: str | None = None,
    ) -> ActionResult:
        from sync.trading import desk

        async def online(c, actor):
            from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

            order = await online_desk.modify(
                self.store,
                c,
                actor,
                order_id=order_id,
                client_order_id=client_order_id,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
            )
            return ActionResult(
                "order_modify",
                "ONLINE",
                actor.user_id,
                order={**order.model_dump(mode="json"), "outcome": "modified"},
            )

        def backup(actor, mode):
            r = desk.modify(
                self.store,
                actor,
                order_id=order_id,
                client_order_id=client_order_id,
                quantity=quantity,
                price=price,
                trigger_price=trigger_price,
                mode=mode,
            )
            return ActionResult(
                "order_modify",
                mode,
                actor.user_id,
                journal_seqs=[r.seq],
                order={
                    "client_order_id": r.client_order_id,
                    "seq": r.seq,
                    "target_order_id": order_id,
                    "target_client_order_id": client_order_id,
                    "outcome": "journaled",
                },
            )

        return await self._route(password, online, backup, "order_modify")

    async def cancel(
        self, *, order_id: str | None = None, client_order_id: str | None = None, password: str | None = None
    ) -> ActionResult:
        from sync.trading import desk

        async def online(c, actor):
            from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

            order = await online_desk.cancel(
                self.store, c, actor, order_id=order_id, client_order_id=client_order_id
            )
            return ActionResult(
                "order_cancel",
                "ONLINE",
                actor.user_id,
                order={**order.model_dump(mode="json"), "outcome": order.status.value.lower()},
            )

        def backup(actor, mode):
            r = desk.cancel(self.store, actor, order_id=order_id, client_order_id=client_order_id, mode=mode)
            return ActionResult(
                "order_cancel",
                mode,
                actor.user_id,
                journal_seqs=[r.seq],
                order={
                    "client_order_id": r.client_order_id,
                    "seq": r.seq,
                    "target_order_id": order_id,
                    "target_client_order_id": client_order_id,
                    "outcome": "journaled",
                },
            )

        return await self._route(password, online, backup, "order_cancel")

    # ------------------------------------------------------------------ square-off, kill switch

    async def squareoff(
        self,
        *,
        client_id: str | None = None,
        symbol: str | None = None,
        keep_orders: bool = False,
        dry_run: bool = False,
        password: str | None = None,
    ) -> ActionResult:
        from sync.trading import desk

        async def online(c, actor):
            from sync.trading import online_desk  # the ORM models: only the ONLINE route needs them

            legs, cancels = await online_desk.squareoff(
                self.store,
                c,
                actor,
                client_id=client_id,
                symbol=symbol,
                keep_orders=keep_orders,
                dry_run=dry_run,
            )
            return ActionResult(
                "squareoff",
                "ONLINE",
                actor.user_id,
                legs=[leg.as_dict() for leg in legs],
                cancels=cancels,
                dry_run=dry_run,
            )

        def backup(actor, mode):
            legs, cancels, receipts = desk.squareoff(
                self.store,
                actor,
                client_id=client_id,
                symbol=symbol,
                keep_orders=keep_orders,
                mode=mode,
                dry_run=dry_run,
            )
            ctargets = [_target_dict(t) for t in cancels]
            for t, r in zip(ctargets, receipts):
                t["cancel_client_order_id"], t["outcome"] = r.client_order_id, "journaled"
            return ActionResult(
                "squareoff",
                mode,
                actor.user_id,
                legs=[leg.as_dict() for leg in legs],
                cancels=ctargets,
                journal_seqs=[r.seq for r in receipts],
                dry_run=dry_run,
            )

        return await self._route(password, online, backup, "squareoff")

    async def killswitch(self, *, off: bool = False, password: str | None = None) -> ActionResult:
        from sync.trading import desk, online_desk

        if off:  # a supervisor's decision, checked locally in every mode (audited)
            decision = await self.decide_mode()
            actor = await self._supervisor(password, "release the kill switch", decision.mode)
            await asyncio.to_thread(online_desk.set_killswitch, self.store, actor, False, mode=decision.mode)
            return ActionResult("killswitch_off", decision.mode, actor.user_id)

        async def online(c, actor):
            cancels = await online_desk.killswitch(self.store, c, actor)
            return ActionResult("killswitch", "ONLINE", actor.user_id, cancels=cancels)

        def backup(actor, mode):
            cancels, receipts = desk.killswitch(self.store, actor, mode=mode)
            ctargets = [_target_dict(t) for t in cancels]
            for t, r in zip(ctargets, receipts):
                t["cancel_client_order_id"], t["outcome"] = r.client_order_id, "journaled"
            return ActionResult(
                "killswitch", mode, actor.user_id, cancels=ctargets, journal_seqs=[r.seq for r in receipts]
            )

        return await self._route(password, online, backup, "killswitch")

    # ------------------------------------------------------------------ supervisor: mode, policy

    async def _supervisor(self, password: str | None, what: str, mode: str):
        """A supervisor proves who they are against this console's local verifier and
        signed grant (works whether or not main is up)."""
        from sync.trading.policy import check_supervisor

        try:
            actor = await self._actor("LOCAL", password)
            check_supervisor(actor.role, what)
        except ServiceError:
            raise
        except Exception as exc:
            problem = translate(exc)
            if type(problem) is ServiceError:
                raise
            raise problem from exc
        return actor

    def mode_show(self) -> dict:
        from localstore.models import ConsoleState

        with self.store.read() as s:
            cs = s.get(ConsoleState, 1)
            return {
                "mode": cs.mode,
                "mode_since": cs.mode_since.isoformat() if cs.mode_since else None,
                "forced_mode": cs.forced_mode,
                "forced_by": cs.forced_by,
                "forced_at": cs.forced_at.isoformat() if cs.forced_at else None,
            }

    async def mode_force(self, mode: str | None, *, password: str | None = None) -> dict:
        """Force ONLINE/BACKUP/RECOVERING (or None: back to automatic); audited."""
        from backend_client.detector import Mode
        from localstore import audit
        from localstore.models import ConsoleState

        if mode is not None:
            try:
                mode = Mode(mode.upper()).value
            except ValueError:
                raise Refused(
                    f"unknown mode {mode!r}: ONLINE, BACKUP or RECOVERING", "invalid_mode"
                ) from None
            if mode == "SUSPECT":
                raise Refused("SUSPECT is the detector's own state and cannot be forced", "invalid_mode")
        actor = await self._supervisor(password, "override the mode", "LOCAL")
        now = clock.utcnow()

        def save():
            with self.store.write() as s:
                cs = s.get(ConsoleState, 1)
                before = cs.forced_mode
                cs.forced_mode, cs.forced_by, cs.forced_at = (
                    mode,
                    actor.user_id if mode else None,
                    now if mode else None,
                )
                audit.append(
                    s,
                    user_id=actor.user_id,
                    mode=mode or cs.mode,
                    action="mode_change",
                    payload={"forced_mode": mode, "before": before},
                )

        await asyncio.to_thread(save)
        log.info("mode_change", extra={"event": "mode_change", "forced_mode": mode})
        return self.mode_show()

    def policy_show(self) -> dict:
        from localstore.models import Policy

        with self.store.read() as s:
            p = s.get(Policy, 1)
            return {
                "reduce_only": not p.allow_new_exposure,
                "allow_new_exposure": p.allow_new_exposure,
                "killswitch": p.killswitch,
                "stale_after_minutes": p.stale_after_minutes,
                "updated_by": p.updated_by,
                "updated_at": p.updated_at.isoformat() if p.updated_at else None,
            }

    async def policy_set(self, *, allow_new_exposure: bool, password: str | None = None) -> dict:
        from localstore import audit
        from localstore.models import Policy

        actor = await self._supervisor(password, "change the backup policy", "LOCAL")
        now = clock.utcnow()

        def save():
            with self.store.write() as s:
                p = s.get(Policy, 1)
                before = p.allow_new_exposure
                p.allow_new_exposure, p.updated_by, p.updated_at = allow_new_exposure, actor.user_id, now
                audit.append(
                    s,
                    user_id=actor.user_id,
                    mode="LOCAL",
                    action="policy_change",
                    payload={"allow_new_exposure": allow_new_exposure, "before": before},
                )

        await asyncio.to_thread(save)
        log.info("policy_change", extra={"event": "policy_change", "allow_new_exposure": allow_new_exposure})
        return self.policy_show()

    # ------------------------------------------------------------------ supervisor: locked users

    async def user_release(self, user_id: str, *, password: str | None = None) -> dict:
        """A supervisor lifts ``user_id``'s offline lockout and failure delay on this console
        (localstore.credentials; audited ``user_released``).  Checked locally: works offline."""
        from localstore import audit, credentials
        from sync.offline import throttle_anchors

        actor = await self._supervisor(password, "release a locked user", "LOCAL")
        anchors = throttle_anchors(self.store)

        def save():
            with self.store.write_core() as conn:
                before = credentials.clear_attempts(anchors, user_id)
                audit.append_core(
                    conn,
                    user_id=actor.user_id,
                    mode="LOCAL",
                    action="user_released",
                    payload={
                        "user": user_id,
                        "by": actor.user_id,
                        "failures": before.count,
                        "was_locked": before.locked,
                    },
                )
            return before

        before = await asyncio.to_thread(save)
        log.info(
            "user_released", extra={"event": "user_released", "user_id": user_id, "was_locked": before.locked}
        )
        return {
            "user": user_id,
            "released_by": actor.user_id,
            "was_locked": before.locked,
            "failures": before.count,
            "lock_after": before.lock_after,
        }

    def user_lockout_show(self) -> dict:
        from localstore import credentials
        from sync.offline import throttle_anchors

        return {"lock_after": credentials.lock_after(throttle_anchors(self.store))}

    async def user_lockout_set(self, n: int, *, password: str | None = None) -> dict:
        """A supervisor sets how many password attempts in a row without the right one lock
        a user offline (0: never), kept in the trust anchors, not the store; audited."""
        from localstore import audit, credentials
        from sync.offline import throttle_anchors

        if n < 0 or n > 1000:
            raise Refused(f"the lockout count is 0 (off) to 1000, not {n}", "invalid_value")
        actor = await self._supervisor(password, "change the offline lockout", "LOCAL")
        anchors = throttle_anchors(self.store)

        def save():
            with self.store.write_core() as conn:
                before = credentials.lock_after(anchors)
                credentials.set_lock_after(anchors, n)
                audit.append_core(
                    conn,
                    user_id=actor.user_id,
                    mode="LOCAL",
                    action="lockout_change",
                    payload={"lock_after": n, "before": before},
                )

        await asyncio.to_thread(save)
        return {"lock_after": n, "set_by": actor.user_id}

    def journal_entries(self, *, limit: int = 1000, unfinished_only: bool = False) -> list[dict]:
        from sync.trading import journal

        with self.store.read() as s:
            return journal.entries(s, limit=limit, unfinished_only=unfinished_only)

    def pending_squareoffs(self, client_id: str | None = None) -> dict[tuple, dict]:
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
        out: dict[tuple, dict] = {}
        with self.store.read_core() as conn:
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


class Service(TradingMixin):
    """One console's view of the world: its store, its backend, its user."""

    def __init__(self, *, backend_url: str | None = None, home: Path | None = None, user: str | None = None):
        self.backend_url = (backend_url or DEFAULT_BACKEND).rstrip("/")
        self.home = home
        self.user = user
        self._store: Store | None = None
        self._mode: ModeDecision | None = None
        self._early_check = None  # localstore.verifier.EarlyCheck: a password check started ahead (scripts)
        # f(kind, detail) for each real request to main that failed as unavailable
        # (the console connects its runtime's failure detector here)
        self.request_error_hooks: list = []

    # ------------------------------------------------------------------ plumbing

    @property
    def data_dir(self) -> Path:
        return data_dir(self.home)

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self._store = open_store(store_path(self.home))
            except StoreError as exc:
                raise StoreProblem(str(exc), exc.kind) from exc
            eventlog.set_context(console_id=self._store.console_id)  # every log line names the console
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def current_user(self) -> str:
        """--user / LIFEBOAT_USER, else the last user who logged in online on this console."""
        if self.user:
            return self.user
        from localstore.models import UserRow

        with self.store.read() as s:
            uid = s.scalars(
                select(UserRow.user_id)
                .where(UserRow.last_online_login_at.is_not(None))
                .order_by(UserRow.last_online_login_at.desc())
                .limit(1)
            ).first()
        if uid is None:
            raise NotLoggedIn("nobody has logged in on this console: run `lifeboat login --user USER`")
        self.user = uid
        return uid

    def client(self, token: str | None = None) -> BackendClient:
        from backend_client.client import BackendClient

        return BackendClient(self.backend_url, token=token)

    @asynccontextmanager
    async def session_client(self, password: str | None = None):
        """A client carrying the current user's token (from the keyring), or a fresh
        login when a password is given (scripts: --password-stdin)."""
        from localstore import secrets

        user = self.current_user()
        async with self.client() as c:
            if password is not None:
                await self._login(c, user, password)
            else:
                token = secrets.load_token(user)
                if token is None:
                    raise NotLoggedIn(
                        f"no saved session for {user}: run `lifeboat login --user {user}` or pass --password-stdin"
                    )
                c.token = token
            yield c
            from localstore import checkpoints  # main answered: send the audit checkpoints queued meanwhile

            await checkpoints.send_queued(self.store, c)

    # ------------------------------------------------------------------ login / logout

    async def login(self, user_id: str, password: str) -> LoginResult:
        self.user = user_id
        try:
            async with self.client() as c:
                return await self._login(c, user_id, password)
        except be.BackendError as exc:
            raise translate(exc) from exc

    async def _login(self, c: BackendClient, user_id: str, password: str) -> LoginResult:
        from contract.grants import GrantInvalid, key_for, verify_grant
        from localstore import audit, credentials, secrets
        from localstore.models import OfflineCredential, UserRow
        from sync.offline import throttle_anchors

        session = await c.login(user_id, password)
        keys = await c.keys()
        grant = session.offline_grant
        try:
            key = key_for(grant, keys)
            verify_grant(grant, key.public_key)
        except GrantInvalid as exc:
            raise Denied(
                f"the main system's offline grant does not verify ({exc}); offline login will not be possible"
            ) from exc
        if grant.claims.user_id != session.user.user_id:
            raise Denied("the offline grant names another user; refusing it")
        verifier = credentials.make_verifier(password)
        now = clock.utcnow()
        store = self.store
        # trust anchors (sync.identity, localstore.anchors): this store becomes the console
        # enrolled on this home (a copy gets a new console id) and main's grant keys are pinned
        # outside the store; offline login verifies grants with these pins only
        enrolment = await asyncio.to_thread(self._enrol, keys, user_id, key.key_id)

        def persist() -> None:
            with store.write() as s:
                user = s.get(UserRow, user_id) or UserRow(user_id=user_id)
                user.role = session.user.role
                user.client_ids = json.dumps(sorted(session.user.client_ids))
                user.last_online_login_at = now
                s.add(user)
                cred = s.get(OfflineCredential, user_id) or OfflineCredential(user_id=user_id)
                cred.verifier = verifier
                cred.grant_json = grant.model_dump_json()
                cred.key_id = key.key_id
                cred.public_key = key.public_key
                cred.valid_until = grant.claims.valid_until
                cred.trading_date = grant.claims.trading_date
                cred.updated_at = now
                s.add(cred)
                credentials.observe_server_time(
                    s, grant.claims.issued_at
                )  # main's time, never the local clock
                released = credentials.online_login(throttle_anchors(store), user_id, grant.claims.issued_at)
                if released.count:  # the online login lifts the offline throttle and lockout
                    audit.append(
                        s,
                        user_id=user_id,
                        mode="ONLINE",
                        action="user_released",
                        payload={
                            "user": user_id,
                            "by": "online login",
                            "failures": released.count,
                            "was_locked": released.locked,
                        },
                    )
                audit.append(
                    s,
                    user_id=user_id,
                    mode="ONLINE",
                    action="login",
                    payload={
                        "how": "online",
                        "role": session.user.role.value,
                        "console_id": store.console_id,
                        "grant_keys": _fingerprints({k.key_id: k.public_key for k in keys.keys}),
                        "clients": len(session.user.client_ids),
                        "grant_valid_until": grant.claims.valid_until.isoformat(),
                    },
                )

        await asyncio.to_thread(persist)
        from localstore import checkpoints  # the audit chain's signed checkpoints: key to main, queue sent

        await checkpoints.at_login(store, c)
        kept = secrets.save_token(user_id, session.access_token)
        log.info("login", extra={"event": "login", "user_id": user_id, "keyring_kept": kept})
        return LoginResult(session.user, kept, grant.claims.valid_until, store.console_id)

    def _enrol(self, keys, user_id: str, grant_key_id: str):
        """At an online login: bind this store to this home (sync.identity.ensure_enrolled) and
        pin the grant keys main publishes now (``keys``: its /keys), replacing the old pins:
        only main, online, changes them.  A change of pins is audited.  With a broker's trust
        file (localstore.trustfile) only the keys it lists are pinned, and a grant signed by
        a key it does not list refuses the login."""
        from localstore import audit, trustfile
        from localstore.anchors import AnchorError
        from sync.identity import anchors_for, ensure_enrolled

        store = self.store
        anchors = anchors_for(store)
        published = {k.key_id: k.public_key for k in keys.keys}
        try:
            vetted = trustfile.untrusted(self.data_dir, published)
        except trustfile.TrustFileError as exc:
            raise Denied(f"{exc}; refusing the login (nothing pinned)") from exc
        if vetted is not None:
            path, unlisted = vetted
            if grant_key_id in unlisted:
                raise Denied(
                    f"the main system signs offline grants with key {grant_key_id!r} (SHA-256 "
                    f"{trustfile.fingerprint(published[grant_key_id])}), which the broker's trust file "
                    f"{path} does not list: refusing the login (nothing pinned; a man in the middle, "
                    f"or the main system's keys changed: ask the broker)"
                )
            published = {k: v for k, v in published.items() if k not in unlisted}
        try:
            enrolment = ensure_enrolled(store, anchors, user_id=user_id)
            before = anchors.grant_keys() if anchors is not None else {}
            if anchors is not None and before != published:
                anchors.put(grant_keys=published)
                if (
                    before
                ):  # a change (main's new keys, or pins put right): audited; the first pins are the login's
                    with store.write_core() as conn:
                        audit.append_core(
                            conn,
                            user_id=user_id,
                            mode="ONLINE",
                            action="grant_keys_pinned",
                            payload={
                                "pinned": _fingerprints(published),
                                "before": _fingerprints(before),
                                "where": anchors.kind,
                            },
                        )
        except AnchorError as exc:  # trust cannot be kept here: no offline login would be possible
            raise Denied(f"cannot keep this console's trust anchors: {exc}") from exc
        if enrolment.previous is not None:
            eventlog.set_context(console_id=enrolment.console_id)
            log.info(
                "console_enrolled",
                extra={
                    "event": "console_enrolled",
                    "console_id": enrolment.console_id,
                    "previous": enrolment.previous,
                },
            )
        return enrolment

    def logout(self) -> tuple[str, str]:
        """Forget the saved token: (user, what happened to the token: "removed", "none"
        or "no_keyring", localstore.secrets.delete_token)."""
        from localstore import audit, secrets

        user = self.current_user()
        token = secrets.delete_token(user)
        with self.store.write() as s:
            audit.append(s, user_id=user, mode="ONLINE", action="logout", payload={"keyring": token})
        return user, token

    # ------------------------------------------------------------------ BOD

    async def sync_bod(self, password: str | None = None) -> BodResult:
        import asyncio

        from sync.bod import replace_book

        user = self.current_user()
        try:
            async with self.session_client(password) as c:
                snap = await c.bod()
            return await asyncio.to_thread(
                replace_book, self.store, snap, mode="ONLINE", reason="lifeboat sync bod", user_id=user
            )
        except be.ProtocolError as exc:  # main's fault (exit 5); replace_book had not begun, or rolled back
            refused = MainUnavailable(
                f"the main system's start-of-day snapshot was refused whole and nothing was "
                f"stored (the previous snapshot is kept): {exc.message}"
            )
            refused.code = "snapshot_refused"
            raise refused from exc
        except be.BackendError as exc:
            raise translate(exc) from exc

    # ------------------------------------------------------------------ book

    async def positions(
        self, client_id: str | None = None, *, local: bool = False, password: str | None = None
    ) -> list[wire.Position]:
        if local:
            return self.local_positions(client_id)
        try:
            async with self.session_client(password) as c:
                return await c.positions(client_id)
        except be.BackendError as exc:
            raise translate(exc) from exc

    async def orders(
        self, client_id: str | None = None, *, local: bool = False, password: str | None = None
    ) -> list[wire.Order]:
        if local:
            return self.local_orders(client_id)
        try:
            async with self.session_client(password) as c:
                return await c.orders(client_id)
        except be.BackendError as exc:
            raise translate(exc) from exc

    def _local_scope(self) -> list[str] | None:
        """The current user's clients as recorded at their last online login (None: every
        client, for a supervisor or viewer).  A console shared by two dealers keeps one
        book; each sees only their own clients in it."""
        from contract import wire
        from localstore.models import UserRow

        user = self.current_user()
        with self.store.read() as s:
            row = s.get(UserRow, user)
        if row is None:
            raise NotLoggedIn(
                f"{user} has never logged in on this console: run `lifeboat login --user {user}`"
            )
        if row.role != wire.Role.DEALER:
            return None
        return json.loads(row.client_ids or "[]")

    def _scoped(self, q, column, client_id: str | None):
        scope = self._local_scope()
        if client_id is not None:
            from localstore.models import ClientRow

            with self.store.read() as s:
                known = s.get(ClientRow, client_id) is not None
            if not known:
                raise RejectedByMain(
                    f"unknown client {client_id!r} in the local book (not in your scope, or no BOD yet)"
                )
            if scope is not None and client_id not in scope:
                raise Denied(f"client {client_id} is not in {self.user}'s scope")
            return q.where(column == client_id)
        return q if scope is None else q.where(column.in_(scope))

    def local_positions(self, client_id: str | None = None) -> list[wire.Position]:
        from contract import wire
        from localstore.models import PositionRow
        from sync.rows import to_model

        q = select(PositionRow).order_by(
            PositionRow.client_id, PositionRow.exchange, PositionRow.symbol, PositionRow.product
        )
        q = self._scoped(q, PositionRow.client_id, client_id)
        with self.store.read() as s:
            return [to_model(r, wire.Position) for r in s.scalars(q)]

    def local_orders(self, client_id: str | None = None) -> list[wire.Order]:
        from contract import wire
        from localstore.models import OrderRow
        from sync.rows import to_model

        q = self._scoped(
            select(OrderRow).order_by(OrderRow.created_at, OrderRow.order_id), OrderRow.client_id, client_id
        )
        with self.store.read() as s:
            return [to_model(r, wire.Order) for r in s.scalars(q)]

    # ------------------------------------------------------------------ the console's session (issue 6)
    # What the dealer console needs beyond the CLI's commands: route by its runtime's
    # mode, offline login and unlock, and the rest of the local book.  The TUI calls
    # these and never touches the store or SQLAlchemy itself.

    def use_mode(self, mode: str | None, probe=None) -> None:
        """Route the next actions by a running detector's mode (the console's runtime)
        instead of a one-shot probe.  SUSPECT has not switched yet: ONLINE.  ``None``
        goes back to the one-shot decision of ``decide_mode``."""
        if mode is None:
            self._mode = None
            return
        mode = str(getattr(mode, "value", mode)).upper()
        if mode not in ("ONLINE", "SUSPECT", "BACKUP", "RECOVERING"):
            raise Refused(f"unknown mode {mode!r}: ONLINE, SUSPECT, BACKUP or RECOVERING", "invalid_mode")
        route = "ONLINE" if mode == "SUSPECT" else mode
        if probe is None:
            from types import SimpleNamespace

            probe = SimpleNamespace(
                ok=route == "ONLINE", trading_date=None, latency_ms=None, detail="", kind="unknown"
            )
        self._mode = ModeDecision(route, probe, None)
        eventlog.set_context(mode=route)

    async def _offline_check(self, user_id: str, password: str, mode: str):
        from sync import offline

        try:
            return await asyncio.to_thread(
                offline.login, self.store, user_id, password, mode=mode, early=self._early_check
            )
        except ServiceError:
            raise
        except Exception as exc:  # offline denial, no grant, store trouble: one sentence
            raise translate(exc) from exc

    def start_password_check(self, password: str, early=None) -> None:
        """A script gave its password before the mode is known: start the offline check's
        scrypt (about half a second) now, in a thread beside the health probe, unless
        ``early`` (localstore.verifier.EarlyCheck, started by the CLI before its imports)
        already runs.  Used only if offline login then happens for the same user, password
        and stored verifier (sync.offline.login); harmless otherwise."""
        from sync import offline

        try:
            user = self.current_user()
            if early is not None and early.user_id == user and early.password == password:
                self._early_check = early
                return
            self._early_check = offline.start_check(self.store, user, password)
        except Exception:  # noqa: BLE001 - an optimisation only: login checks again and reports
            self._early_check = None

    async def login_offline(self, user_id: str, password: str):
        """Log in while main is down, against this console's signed grant and local
        verifier (audited, throttled).  Returns the sync.offline.OfflineSession (role,
        client_ids from the grant); the user becomes this service's user."""
        sess = await self._offline_check(user_id, password, "BACKUP")
        self.user = user_id
        eventlog.set_context(user=user_id)
        return sess

    async def unlock(self, password: str) -> None:
        """The current user's password again (a locked console): the local verifier and
        signed grant, so it works in every mode.  Raises Denied on a wrong password."""
        from sync.offline import OfflineDenied

        try:
            await self._offline_check(self.current_user(), password, "LOCAL")
        except Denied as exc:  # not a login, and not offline: in every mode it is an unlock that failed
            if isinstance(exc.__cause__, OfflineDenied):
                raise Denied(f"unlock refused: {exc.__cause__.message}") from exc.__cause__
            raise

    def local_trades(self, client_id: str | None = None) -> list[wire.Trade]:
        from contract import wire
        from localstore.models import TradeRow
        from sync.rows import to_model

        q = self._scoped(
            select(TradeRow).order_by(TradeRow.traded_at, TradeRow.trade_id), TradeRow.client_id, client_id
        )
        with self.store.read() as s:
            return [to_model(r, wire.Trade) for r in s.scalars(q)]

    def local_instruments(self) -> list[wire.Instrument]:
        """Reference data from the last BOD (not scoped: every dealer sees every instrument)."""
        from contract import wire
        from localstore.models import InstrumentRow
        from sync.rows import to_model

        with self.store.read() as s:
            return [
                to_model(r, wire.Instrument)
                for r in s.scalars(
                    select(InstrumentRow).order_by(InstrumentRow.exchange, InstrumentRow.symbol)
                )
            ]

    def local_clients(self) -> list[wire.Client]:
        from contract import wire
        from localstore.models import ClientRow
        from sync.rows import to_model

        q = self._scoped(select(ClientRow).order_by(ClientRow.client_id), ClientRow.client_id, None)
        with self.store.read() as s:
            return [to_model(r, wire.Client) for r in s.scalars(q)]

    def replay_backlog(self) -> int:
        """Journal entries still to be sent to main (pending or sent): the rest of a replay."""
        from sync.detector_store import replay_work

        return replay_work(self.store)

    # ------------------------------------------------------------------ status

    async def decide_mode(self) -> ModeDecision:
        """The one-shot mode of a CLI command (about a second at most): a supervisor's
        forced mode wins; else one health probe.  Main up while the journal still holds
        unreplayed intents is RECOVERING: new actions queue behind the replay."""
        if self._mode is not None:
            return self._mode
        from backend_client.detector import Mode, decide_one_shot, probe_once
        from sync import status

        with self.store.read_core() as conn:  # Core: no ORM on the CLI's start-up path
            forced, unfinished = status.mode_inputs(conn)
        # plain http:// never uses TLS: no certificate store to load (~30 ms of a CLI run)
        # (https:// keeps full certificate verification)
        probe = await probe_once(self.backend_url, verify=self.backend_url.startswith("https://"))
        mode = decide_one_shot(probe, forced)
        if not forced and mode is Mode.ONLINE and unfinished:
            mode = Mode.RECOVERING
        self._mode = ModeDecision(mode.value, probe, forced)
        eventlog.set_context(mode=mode.value)
        return self._mode

    async def status(self, *, now: datetime | None = None) -> dict:
        """What support staff look at first.  Probes the main system once (about a second at most).

        The mode is UNAVAILABLE (exit 5, with a ``reason``) where the one-shot decision is
        BACKUP but no backup action could be accepted here: no user with a verifier and a
        grant valid by the clock (the checks of offline login), or no start-of-day book.
        A key whose value is not known is left out (never a null where a word belongs):
        no ``last_bod`` means never taken, no ``recorded_mode`` means no runtime recorded
        one, no ``mode_since`` means the one-shot probe decided it and nothing says since when."""
        from sync import status

        decision = await self.decide_mode()
        probe = decision.probe
        backend = {"url": self.backend_url, "reachable": probe.ok}
        if probe.ok:
            backend.update(
                status.present(
                    latency_ms=None if probe.latency_ms is None else round(probe.latency_ms, 1),
                    trading_date=probe.trading_date.isoformat() if probe.trading_date else None,
                )
            )
        else:
            backend.update(error=probe.detail or probe.kind, kind=probe.kind)
        now = now or clock.utcnow()
        with self.store.read_core() as conn:  # Core reads: no ORM, no models (bench P7)
            st = status.store_status(conn, unacknowledged_limit=20)
            anchors = status.anchors_state(self.store, conn)
            mode, reason, backup = decision.mode, None, None
            if mode == "BACKUP":  # would a backup action be accepted?  (cryptography only on this path)
                ready = status.backup_readiness(conn, now, store=self.store, user_id=self.user)
                no_bod = "no start-of-day book in the local store (`lifeboat sync bod` while main is up)"
                if ready["users"] and st["bod_at"] is not None:
                    backup = {"users": ready["users"]}
                else:
                    mode = "UNAVAILABLE"
                    # users who could act but no book: the book alone is the reason
                    why = "; ".join(
                        (ready["problems"] if not ready["users"] else [])
                        + ([no_bod] if st["bod_at"] is None else [])
                    )
                    head = (
                        f"BACKUP forced by {st['forced_by'] or 'a supervisor'}"
                        if decision.forced
                        else f"main system unreachable ({probe.detail or probe.kind})"
                    )
                    reason = f"{head} and backup not possible here: {why}"
        depth = st["depth"]
        recorded = None
        if st["mode_since"] is not None:  # the column defaults to ONLINE: without a time nobody recorded it
            recorded = status.present(
                mode=st["recorded_mode"], reason=st["mode_reason"], since=st["mode_since"].isoformat()
            )
        if decision.forced and st["forced_at"]:
            mode_since = st["forced_at"].isoformat()
        elif recorded is not None and recorded["mode"] == mode:
            mode_since = recorded["since"]
        else:
            mode_since = None
        mirror = status.present(
            last_event_seq=st["last_event_seq"],
            newest_event_at=st["last_event_at"].isoformat() if st["last_event_at"] else None,
            current_at=st["last_applied_at"].isoformat() if st["last_applied_at"] else None,
            staleness_s=None
            if st["last_applied_at"] is None
            else round((now - st["last_applied_at"]).total_seconds(), 3),
        )
        return status.present(
            **{
                "mode": mode,
                "reason": reason,
                "forced_mode": decision.forced,
                "forced_by": st["forced_by"] if decision.forced else None,
                "mode_since": mode_since,
                "backend": backend,
                "backup": backup,
                "console_id": self.store.console_id,
                "store": str(self.store.path),
                "privacy_warnings": privacy_warnings(self.data_dir),  # what others could read in the data dir
                "anchors": anchors,  # where the keys that decide trust are, whether enrolled here
                "journal_depth": depth,
                "journal": {
                    "depth": depth,
                    "unacknowledged": st["unacknowledged"],
                    "unacknowledged_entries": st["unacknowledged_entries"],
                },
                "policy": status.present(
                    reduce_only=not st["allow_new_exposure"],
                    allow_new_exposure=st["allow_new_exposure"],
                    killswitch=st["killswitch"],
                    updated_by=st["policy_updated_by"],
                ),
                "replay": status.replay_state(st, now, main_reachable=probe.ok),
                # the mode the console's runtime (agent or screen) last recorded on this store
                "recorded_mode": recorded,
                "last_bod": None
                if st["bod_at"] is None
                else status.present(
                    at=st["bod_at"].isoformat(), trading_date=st["trading_date"], seq=st["bod_seq"]
                ),
                "mirror": mirror or None,
            },
            keep=("forced_mode",),
        )  # null forced_mode: no supervisor forced one (as `mode show` says)

    # ------------------------------------------------------------------ agent

    async def run_agent(self, password: str | None = None, *, ready=None) -> None:
        """The runtime with no screen, until cancelled or the session is refused."""
        from console.shutdown import AgentPresence
        from sync.runtime import Runtime

        try:
            # while it runs, a console quitting with unsent entries can say the agent sends them
            with AgentPresence(self.data_dir):
                async with self.session_client(password) as c:
                    runtime = Runtime(self.store, c, user_id=self.current_user())
                    if ready is not None:
                        ready(runtime)
                    await runtime.run()
        except be.BackendError as exc:
            raise translate(exc) from exc

    # ------------------------------------------------------------------ replay and reconciliation (issue 5)

    async def replay(self, password: str | None = None, *, wait_s: float = 0.0) -> dict:
        """Replay the journal to main now (one pass holding the store's replay lease), then
        reconcile.  Returns {"replay": ReplayResult dict, "report": report dict or None};
        "busy" (another replayer) and "stopped" (main went away) are in replay.status."""
        from sync.reconcile import reconcile
        from sync.replay import Replayer

        try:
            async with self.session_client(password) as c:
                result = await Replayer(self.store, c).run(wait_s=wait_s)
                report = None
                if result.status not in ("busy", "refused"):  # refused: nothing was sent (audit chain)
                    try:
                        report = await reconcile(self.store, c, result, mode="RECOVERING")
                    except (be.Unavailable, be.ProtocolError) as exc:
                        if result.status == "done":
                            result.status, result.stopped_reason = "stopped", f"reconciliation: {exc.message}"
        except be.BackendError as exc:
            raise translate(exc) from exc
        log.info(
            "replay", extra={"event": "replay", "status": result.status, "processed": len(result.outcomes)}
        )
        return {"replay": result.as_dict(), "report": report}

    def last_report(self) -> dict | None:
        from sync.reconcile import last_report

        return last_report(self.store)

    def held_entries(self) -> list[dict]:
        from sync.trading.held import held_entries

        return held_entries(self.store)

    async def release_held(self, seq: int, *, password: str | None = None) -> dict:
        """Supervisor: send a held entry on the next replay (audited)."""
        return await self._decide_held(seq, password, release=True)

    async def discard_held(self, seq: int, *, password: str | None = None) -> dict:
        """Supervisor: never send a held entry (moot, "discarded by <user>"; audited)."""
        return await self._decide_held(seq, password, release=False)

    async def _decide_held(self, seq: int, password: str | None, *, release: bool) -> dict:
        from sync.trading import held

        actor = await self._supervisor(password, "decide held journal entries", "LOCAL")
        fn = held.release if release else held.discard
        try:
            row = await asyncio.to_thread(fn, self.store, seq, user_id=actor.user_id, mode="LOCAL")
        except held.NotHeld as exc:
            raise Refused(str(exc), "not_held") from exc
        log.info(
            "replay_release" if release else "replay_discard",
            extra={
                "event": "replay_release" if release else "replay_discard",
                "seq": seq,
                "client_order_id": row["client_order_id"],
            },
        )
        return row
