"""Exactly-once replay of the backup journal to the main system.

Why it is built this way (issue 5; DESIGN.md "The journal"):

* Entries go strictly in journal order (``seq``): an action a user takes while the
  replay runs is journaled behind it (a higher seq) and is picked up in the same
  pass, so nothing overtakes anything for a client.
* Every state move is committed before the next step.  Before anything is sent for
  an entry it is marked SENT (a commit); then the request goes out; then the
  outcome is committed.  A pass cut off at any point (kill -9, main gone, power)
  resumes with no loss and no duplicate, because an entry found SENT is first looked
  up on main by its client_order_id and only sent again when main has no such order.
  The client_order_id is main's idempotency key, so even a blind repeat of a PLACE
  would be one order; we still never repeat blindly.
* State moves commit with ``synchronous=NORMAL`` (the intent itself was journaled with
  FULL by sync/trading/journal.py; this is only the replay's bookkeeping).  In WAL mode a
  NORMAL commit is atomic and survives a crash of this process; only an OS crash or
  power loss can lose the last few moves.  That is safe here: a lost SENT mark makes
  the entry look PENDING again, and resending it is harmless because every request
  carries the journaled client_order_id (main answers 200 with the order it already
  has, never a second order) and a square-off looks its derived slice ids up on main
  before computing anything; a lost APPLIED/MOOT/... mark makes the entry SENT or
  PENDING again and it is looked up the same way.  This saves one fsync per move
  (two per entry), as ``journal.acknowledge`` does for the acknowledgement.
* Main's positions are fetched once per client per pass and fetched again only
  after something was sent for that client (any send may change them: a place or a
  modify can fill) or when the fetch is older than ``POSITION_MAX_AGE_S``.  So the
  quantity of every square-off slice is computed from a position fetched after the
  last send for that client: a whole-book square-off costs one GET and one POST a
  leg, not two GETs, and still never overshoots.
* A SQUARE_OFF is an intent ("flatten"), recomputed against main's LIVE position at
  replay time and sent as MARKET orders of at most the freeze quantity.  Slice k has
  the deterministic id ``{client_order_id}-{k}``; on resume every slice is looked up
  before the next is computed.  Already flat: moot.  The position's sign flipped
  since the intent: conflict, held for a person.  It never sells more than the live
  position (never overshoots).
* Stale entries (older than ``Policy.stale_after_minutes`` or from an earlier trading
  day than main's) are held for a supervisor, not sent.
* One replayer per store: the ``replay_lease`` row, taken in a BEGIN IMMEDIATE
  transaction and renewed in the same transaction as every state move (so a replayer
  that lost its lease cannot commit anything).  A lease whose holder is a dead
  process on this host is taken over at once; any other waits for its expiry.
* Main unavailable (or an answer we cannot read) mid-replay: the pass stops, the
  entry stays SENT or PENDING as it is, and the result says why.

Test seam: ``after_step`` (None in production) is called with the step count right
after each *step*, where a step is one committed state move or one answer received
from main (so a crash between "main accepted it" and "we recorded it" is covered too);
the crash tests install one that ends the process with ``os._exit(CRASH_EXIT_CODE)``
at the k-th step.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, func, select, update

from backend_client import errors as be
from backend_client.client import BackendClient
from contract import clock, wire
from contract.enums import value_of
from contract.limits import MAX_SLICES  # a square-off needing more orders is surely wrong: held
from localstore.db import Store
from localstore.models import InstrumentRow, JournalEntry, JournalKind, JournalState, Policy, ReplayLease
from sync.identity import check_enrolled
from sync.trading.held import RELEASED_PREFIX
from sync.trading.squareoff import slice_count, slices

log = logging.getLogger("lifeboat.replay")

CRASH_EXIT_CODE = 77  # the exit code of a process the crash tests end at a step (see after_step)
# Test seam (see the module docstring): called with the step count after every step.
after_step: Callable[[int], None] | None = None
LEASE_TTL_S = 30.0
BATCH = 200
POSITION_MAX_AGE_S = 2.0  # a client's positions fetched longer ago than this are fetched again before use

_J = JournalEntry.__table__
_L = ReplayLease.__table__
_WORK = (JournalState.PENDING.value, JournalState.SENT.value)
_OPEN = wire.OPEN_STATUSES
# One state move: renew the lease (only while we still hold it), then move the entry.
_RENEW = (
    update(_L)
    .where(_L.c.id == 1, _L.c.holder == bindparam("b_holder"))
    .values(expires_at=bindparam("b_expires_at"))
)
# ... built once (building and cache-keying a statement costs about as much as running it).
_MOVE = (
    update(_J)
    .where(_J.c.seq == bindparam("b_seq"))
    .values(
        state=bindparam("b_state"),
        updated_at=bindparam("b_at"),
        state_reason=case(
            (bindparam("b_keep_reason", type_=Integer) == 1, _J.c.state_reason),
            else_=bindparam("b_reason", type_=String),
        ),
        main_order_id=func.coalesce(bindparam("b_main_order_id", type_=String), _J.c.main_order_id),
        attempts=_J.c.attempts + bindparam("b_sent", type_=Integer),
    )
)


def bookkeeping_write(store: Store):
    """The replay's state moves: a Core write transaction committed with
    ``synchronous=NORMAL`` on SQLite (see the module docstring for why that is safe)."""
    return store.write_core(durable=False)


def utcnow() -> datetime:
    return clock.utcnow()


def default_holder(console_id: str) -> str:
    """Who replays: console id, process id and host (enough to find and judge it)."""
    return f"{console_id}/{os.getpid()}@{socket.gethostname()}"


# --------------------------------------------------------------------------- results


@dataclass
class EntryOutcome:
    seq: int
    kind: str
    client_order_id: str
    client_id: str
    exchange: str | None
    symbol: str | None
    product: str | None
    state: str
    reason: str | None = None
    main_order_id: str | None = None


@dataclass
class ReplayResult:
    """What one pass did.  ``status``: "done" (nothing left to send), "stopped" (main
    went away or refused the session: resume later), "busy" (another replayer holds
    the lease: nothing was sent), "refused" (main refused the replay handshake: this
    console's audit chain does not extend the one main witnessed; nothing was sent)."""

    status: str
    holder: str
    started_at: datetime
    finished_at: datetime | None = None
    main_trading_date: date | None = None
    outcomes: list[EntryOutcome] = field(default_factory=list)
    stopped_reason: str | None = None
    busy_holder: str | None = None
    busy_since: datetime | None = None
    steps: int = 0  # committed state moves + answers from main (what the crash hook counts)

    @property
    def message(self) -> str:
        if self.status == "busy":
            since = self.busy_since.isoformat(timespec="seconds") if self.busy_since else "?"
            return f"replay held by {self.busy_holder} since {since}"
        if self.status == "stopped":
            return f"replay stopped: {self.stopped_reason}"
        if self.status == "refused":
            return f"replay refused: {self.stopped_reason}"
        n = len(self.outcomes)
        return f"replay done: {n} entr{'y' if n == 1 else 'ies'} processed"

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "message": self.message,
            "holder": self.holder,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "main_trading_date": self.main_trading_date.isoformat() if self.main_trading_date else None,
            "stopped_reason": self.stopped_reason,
            "busy_holder": self.busy_holder,
            "busy_since": self.busy_since.isoformat() if self.busy_since else None,
            "processed": len(self.outcomes),
            "steps": self.steps,
            "outcomes": [asdict(o) for o in self.outcomes],
        }


class _Stop(Exception):
    """End the pass now; the current entry stays as committed."""


class _LeaseLost(_Stop):
    pass


# --------------------------------------------------------------------------- the lease (blocking)


def _holder_is_dead(holder: str) -> bool:
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
    now = now or utcnow()
    with store.write() as s:
        lease = s.get(ReplayLease, 1)
        if lease is None:
            lease = ReplayLease(id=1)
            s.add(lease)
        free = (
            lease.holder is None
            or lease.holder == holder
            or lease.expires_at is None
            or lease.expires_at <= now
            or _holder_is_dead(lease.holder)
        )
        if not free:
            return False, lease.holder, lease.acquired_at
        if lease.holder and lease.holder != holder:
            log.warning(
                "replay lease taken over", extra={"event": "replay_lease_takeover", "from": lease.holder}
            )
        lease.holder, lease.acquired_at, lease.expires_at = holder, now, now + timedelta(seconds=ttl_s)
        return True, holder, now


def release_lease(store: Store, holder: str) -> None:
    with store.write() as s:
        s.execute(
            update(_L)
            .where(_L.c.id == 1, _L.c.holder == holder)
            .values(holder=None, acquired_at=None, expires_at=None)
        )


def lease_state(store: Store) -> dict:
    with store.read() as s:
        lease = s.get(ReplayLease, 1)
    if lease is None or lease.holder is None:
        return {"holder": None}
    return {
        "holder": lease.holder,
        "acquired_at": lease.acquired_at.isoformat() if lease.acquired_at else None,
        "expires_at": lease.expires_at.isoformat() if lease.expires_at else None,
    }


# --------------------------------------------------------------------------- the replayer


class Replayer:
    """One replay pass over one store, sending with one BackendClient.

    ``offload=True`` runs the store work in a worker thread (the runtime: its event
    loop must never wait on a disk flush); the CLI runs it inline."""

    def __init__(
        self,
        store: Store,
        client: BackendClient,
        *,
        holder: str | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
        clock: Callable[[], datetime] = utcnow,
        offload: bool = False,
    ) -> None:
        self.store = store
        self.client = client
        self.holder = holder or default_holder(store.console_id)
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        self.offload = offload
        self.steps = 0
        self._instruments: dict[tuple[str, str], tuple[int, int]] = {}
        # client_id -> (monotonic time of the fetch, {(exchange, symbol, product): net}); dropped on any send
        self._positions: dict[str, tuple[float, dict[tuple[str, str, str], int]]] = {}
        self.progress: tuple[int, int] = (0, 0)  # (processed, seen) for a status bar

    async def _db(self, fn, *args, **kw):
        if self.offload:
            return await asyncio.to_thread(fn, *args, **kw)
        return fn(*args, **kw)

    def _step(self) -> None:
        self.steps += 1
        if after_step is not None:
            after_step(self.steps)  # test seam: see the module docstring

    # ------------------------------------------------------------------ run

    async def run(self, *, wait_s: float = 0.0, poll_s: float = 0.2) -> ReplayResult:
        """One pass: take the lease (waiting up to ``wait_s``), replay every PENDING/SENT
        entry in seq order, release the lease."""
        result = ReplayResult(status="done", holder=self.holder, started_at=self.clock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_s)
        while True:
            taken, who, since = await self._db(
                take_lease, self.store, self.holder, self.lease_ttl_s, self.clock()
            )
            if taken:
                break
            if loop.time() >= deadline:
                result.status, result.busy_holder, result.busy_since = "busy", who, since
                result.finished_at = self.clock()
                log.info("replay busy", extra={"event": "replay_busy", "holder": who})
                return result
            await asyncio.sleep(poll_s)
        try:
            await self._pass(result)
        finally:
            try:
                await self._db(release_lease, self.store, self.holder)
            except Exception:
                log.exception(
                    "could not release the replay lease", extra={"event": "replay_lease_release_failed"}
                )
        result.finished_at = self.clock()
        result.steps = self.steps
        log.info(
            "replay pass",
            extra={
                "event": "replay_pass",
                "status": result.status,
                "processed": len(result.outcomes),
                "reason": result.stopped_reason,
            },
        )
        return result

    async def _pass(self, result: ReplayResult) -> None:
        try:
            health = await self.client.health()
        except be.BackendError as exc:
            result.status, result.stopped_reason = (
                "stopped",
                f"main unavailable before the first entry: {exc.message}",
            )
            return
        result.main_trading_date = health.trading_date
        refused = await self._handshake()
        if refused is not None:
            result.status, result.stopped_reason = "refused", refused
            return
        stale_after = await self._db(self._stale_minutes)
        last = 0
        seen = 0
        while True:
            batch = await self._db(self._next_batch, last)
            if not batch:
                return
            if not seen:  # entries to send: only from the console enrolled on this home (sync.identity)
                await self._db(check_enrolled, self.store)
            for e in batch:
                last = e["seq"]
                seen += 1
                self.progress = (len(result.outcomes), seen)
                try:
                    outcome = await self._one(e, health.trading_date, stale_after)
                except _Stop as stop:
                    result.status, result.stopped_reason = "stopped", str(stop)
                    return
                if outcome is not None:
                    result.outcomes.append(outcome)

    async def _handshake(self) -> str | None:
        """Before the first entry: checkpoint the audit chain and send main the newest
        checkpoint (``purpose: "replay"``) with the rows since the last one it witnessed
        (localstore.checkpoints).  Main refuses it (409) when this chain does not extend
        the one it witnessed, and then nothing is sent: the reason, else None.  Main not
        taking checkpoints now (unavailable, key not registered) does not stop the pass:
        the checkpoints stay queued."""
        from localstore import checkpoints

        await self._db(checkpoints.make, self.store, mode="RECOVERING", reason="replay")
        try:
            sent = await checkpoints.flush(
                self.store, self.client, purpose="replay", offload=self.offload, resend_newest=True
            )
        except checkpoints.ChainRefused as exc:
            log.error("replay refused by main", extra={"event": "replay_refused", "reason": exc.message})
            return (
                f"main refused the replay: {exc.message} Nothing was sent; the journal is kept "
                f"(`lifeboat audit verify` shows where the local history differs)"
            )
        if sent.stopped:
            log.warning(
                "replay without a witnessed checkpoint",
                extra={"event": "replay_checkpoint_queued", "reason": sent.stopped},
            )
        return None

    # ------------------------------------------------------------------ store (blocking)

    def _stale_minutes(self) -> int:
        with self.store.read() as s:
            p = s.get(Policy, 1)
            return int(p.stale_after_minutes) if p is not None else 30

    def _next_batch(self, after_seq: int) -> list[dict]:
        with self.store.read() as s:
            rows = (
                s.execute(
                    select(_J)
                    .where(_J.c.state.in_(_WORK), _J.c.seq > after_seq)
                    .order_by(_J.c.seq)
                    .limit(BATCH)
                )
                .mappings()
                .all()
            )
        out = []
        for r in rows:
            d = dict(r)
            d["payload"] = json.loads(d["payload"] or "{}")
            out.append(d)
        return out

    def _journal_state_of(self, client_order_id: str) -> tuple[int, str, str | None] | None:
        with self.store.read() as s:
            r = s.execute(
                select(_J.c.seq, _J.c.state, _J.c.state_reason).where(_J.c.client_order_id == client_order_id)
            ).first()
        return None if r is None else (r.seq, value_of(r.state), r.state_reason)

    def _instrument(self, exchange: str, symbol: str) -> tuple[int, int] | None:
        key = (exchange, symbol)
        if key not in self._instruments:
            with self.store.read() as s:
                row = s.get(InstrumentRow, (wire.Exchange(exchange), symbol))
            if row is None:
                return None
            self._instruments[key] = (row.freeze_quantity, row.lot_size)
        return self._instruments[key]

    def _commit_move(
        self, seq: int, state: JournalState, reason: str | None, main_order_id: str | None, sent: bool
    ) -> None:
        now = self.clock()
        values: dict[str, Any] = {
            "b_seq": seq,
            "b_state": state.value,
            "b_at": now,
            "b_reason": reason,
            "b_keep_reason": int(
                state is JournalState.SENT
            ),  # SENT keeps the reason (a supervisor's release)
            "b_main_order_id": main_order_id,
            "b_sent": int(sent),
        }
        with bookkeeping_write(self.store) as conn:
            renewed = conn.execute(
                _RENEW, {"b_holder": self.holder, "b_expires_at": now + timedelta(seconds=self.lease_ttl_s)}
            ).rowcount
            if renewed != 1:
                raise _LeaseLost("the replay lease was taken by another replayer; stopped")
            conn.execute(_MOVE, values)

    async def _move(
        self, e: dict, state: JournalState, reason: str | None = None, main_order_id: str | None = None
    ) -> EntryOutcome | None:
        await self._db(self._commit_move, e["seq"], state, reason, main_order_id, state is JournalState.SENT)
        e["state"] = state.value
        self._step()
        if state is JournalState.SENT:
            return None
        log.info(
            "replayed",
            extra={
                "event": "replay_entry",
                "client_order_id": e["client_order_id"],
                "seq": e["seq"],
                "state": state.value,
                "reason": reason,
            },
        )
        return EntryOutcome(
            e["seq"],
            value_of(e["kind"]),
            e["client_order_id"],
            e["client_id"],
            value_of(e["exchange"]),
            e["symbol"],
            value_of(e["product"]),
            state.value,
            reason,
            main_order_id,
        )

    # ------------------------------------------------------------------ one entry

    def _stale(self, e: dict, main_date: date, stale_after_min: int) -> str | None:
        if (e.get("state_reason") or "").startswith(RELEASED_PREFIX):
            return None  # a supervisor decided to send it anyway
        if e["trading_date"] < main_date:
            return f"from trading day {e['trading_date']:%Y-%m-%d}; main is on {main_date:%Y-%m-%d}"
        age = self.clock() - e["created_at"]
        if age > timedelta(minutes=stale_after_min):
            return f"journaled {int(age.total_seconds() // 60)} min ago (policy: stale after {stale_after_min} min)"
        return None

    async def _one(self, e: dict, main_date: date, stale_after: int) -> EntryOutcome | None:
        kind = JournalKind(value_of(e["kind"]))
        try:
            if kind is JournalKind.PLACE:
                return await self._place(e, main_date, stale_after)
            if kind is JournalKind.SQUARE_OFF:
                return await self._square_off(e, main_date, stale_after)
            return await self._cancel_or_modify(e, kind, main_date, stale_after)
        except be.Unauthorized as exc:
            raise _Stop(f"main refused the session ({exc.message}); log in again and rerun") from None
        except (be.Unavailable, be.ProtocolError) as exc:
            where = (
                "entry left SENT (will be looked up)"
                if e["state"] == JournalState.SENT.value
                else "entry left PENDING"
            )
            raise _Stop(f"main unavailable at seq {e['seq']} ({exc.message}); {where}") from None

    async def _answered(self, coro):
        value = await coro
        self._step()
        return value

    async def _sent(self, client_id: str, coro):
        """A request that may change main's book for ``client_id``: its cached positions
        are dropped before it goes out (whatever the answer, even none)."""
        self._positions.pop(client_id, None)
        return await self._answered(coro)

    # PLACE ------------------------------------------------------------

    def _order_request(self, e: dict) -> wire.OrderRequest:
        p = e["payload"]
        return wire.OrderRequest(
            client_order_id=e["client_order_id"],
            client_id=e["client_id"],
            exchange=value_of(e["exchange"]),
            symbol=e["symbol"],
            side=p["side"],
            quantity=int(p["quantity"]),
            product=value_of(e["product"]),
            order_type=p.get("order_type", "MARKET"),
            price=p.get("price"),
            trigger_price=p.get("trigger_price"),
            validity=p.get("validity") or "DAY",
            disclosed_quantity=p.get("disclosed_quantity"),
        )

    async def _place(self, e: dict, main_date: date, stale_after: int) -> EntryOutcome | None:
        coid = e["client_order_id"]
        if e["state"] == JournalState.SENT.value:
            try:
                order = await self._answered(self.client.order_by_client_id(coid))
                return await self._move(
                    e,
                    JournalState.APPLIED,
                    f"found on main after an unknown outcome ({order.status.value})",
                    order.order_id,
                )
            except be.NotFound:
                pass  # never reached main: safe to send now
        why = self._stale(e, main_date, stale_after)
        if why:
            return await self._move(e, JournalState.HELD, f"stale: {why}")
        try:
            request = self._order_request(e)
        except (ValueError, KeyError, TypeError) as exc:
            return await self._move(e, JournalState.REJECTED, f"unreadable journal payload: {exc}")
        await self._move(e, JournalState.SENT)
        try:
            res = await self._sent(e["client_id"], self.client.place_order(request))
        except be.Rejected as exc:
            return await self._move(e, JournalState.REJECTED, f"{exc.code or 'rejected'}: {exc.message}")
        except be.IdempotencyConflict as exc:
            return await self._move(
                e, JournalState.CONFLICT, f"main holds another order with this id: {exc.message}"
            )
        except (be.Forbidden, be.NotFound) as exc:
            return await self._move(e, JournalState.HELD, f"not allowed for this session: {exc.message}")
        order = res.order
        if order.status is wire.OrderStatus.REJECTED:
            return await self._move(
                e, JournalState.REJECTED, order.status_reason or "rejected by main", order.order_id
            )
        how = "accepted" if res.created else "already accepted"
        return await self._move(e, JournalState.APPLIED, f"{how} ({order.status.value})", order.order_id)

    # SQUARE_OFF -------------------------------------------------------

    async def _live_net(self, e: dict) -> int:
        """Main's net for the entry's position, from a fetch made after the last send
        for this client (see the module docstring)."""
        client_id = e["client_id"]
        cached = self._positions.get(client_id)
        if cached is None or time.monotonic() - cached[0] > POSITION_MAX_AGE_S:
            fetched_at = time.monotonic()
            rows = await self._answered(self.client.positions(client_id))
            cached = (
                fetched_at,
                {(p.exchange.value, p.symbol, p.product.value): p.net_quantity for p in rows},
            )
            self._positions[client_id] = cached
        return cached[1].get((value_of(e["exchange"]), e["symbol"], value_of(e["product"])), 0)

    async def _square_off(self, e: dict, main_date: date, stale_after: int) -> EntryOutcome | None:
        coid = e["client_order_id"]
        p = e["payload"]
        intent_side = p.get("side_at_intent")  # SELL: the position was long when the dealer asked
        intent_qty = p.get("quantity_at_intent")
        ours: list[wire.Order] = []
        if e["state"] == JournalState.SENT.value:  # some slices may be on main: look each up, in order
            while len(ours) < MAX_SLICES:
                try:
                    ours.append(
                        await self._answered(self.client.order_by_client_id(f"{coid}-{len(ours) + 1}"))
                    )
                except be.NotFound:
                    break
        why = self._stale(e, main_date, stale_after)
        if why:
            already = f" ({len(ours)} order(s) already on main)" if ours else ""
            return await self._move(
                e, JournalState.HELD, f"stale: {why}{already}", ours[-1].order_id if ours else None
            )
        inst = await self._db(self._instrument, value_of(e["exchange"]), e["symbol"])
        freeze, lot = inst if inst else (None, 1)
        while True:
            net = await self._live_net(e)
            done_ids = ours[-1].order_id if ours else None
            if net == 0:
                if ours:
                    return await self._move(
                        e, JournalState.APPLIED, f"flat on main after {len(ours)} order(s)", done_ids
                    )
                return await self._move(e, JournalState.MOOT, "already flat on main")
            closing = wire.Side.SELL if net > 0 else wire.Side.BUY
            if intent_side and closing.value != intent_side:
                was = "long" if intent_side == "SELL" else "short"
                return await self._move(
                    e,
                    JournalState.CONFLICT,
                    f"position is now {net:+d} on main; the intent closed a {was} of {intent_qty} "
                    f"(sign flipped{' after our orders' if ours else ''}): a person decides",
                    done_ids,
                )
            working = sum(o.quantity - o.filled_quantity for o in ours if o.status in _OPEN)
            remaining = abs(net) - working
            if remaining <= 0:
                return await self._move(
                    e, JournalState.APPLIED, f"{len(ours)} order(s) working for the rest", done_ids
                )
            if len(ours) + slice_count(remaining, freeze, lot) > MAX_SLICES:  # counted, before any is sent
                return await self._move(
                    e,
                    JournalState.HELD,
                    f"more than {MAX_SLICES} orders needed ({remaining:,} left on main)",
                    done_ids,
                )
            qty = slices(remaining, freeze, lot)[0]
            request = wire.OrderRequest(
                client_order_id=f"{coid}-{len(ours) + 1}",
                client_id=e["client_id"],
                exchange=value_of(e["exchange"]),
                symbol=e["symbol"],
                side=closing,
                quantity=qty,
                product=value_of(e["product"]),
                order_type=wire.OrderType.MARKET,
                validity=wire.Validity.DAY,
            )
            if e["state"] != JournalState.SENT.value:
                await self._move(e, JournalState.SENT)
            after = f" after {len(ours)} order(s)" if ours else ""
            try:
                res = await self._sent(e["client_id"], self.client.place_order(request))
            except be.Rejected as exc:
                return await self._move(
                    e, JournalState.REJECTED, f"{exc.code or 'rejected'}{after}: {exc.message}", done_ids
                )
            except be.IdempotencyConflict as exc:
                return await self._move(
                    e, JournalState.CONFLICT, f"slice id already used on main: {exc.message}", done_ids
                )
            except (be.Forbidden, be.NotFound) as exc:
                return await self._move(
                    e, JournalState.HELD, f"not allowed for this session{after}: {exc.message}", done_ids
                )
            order = res.order
            ours.append(order)
            if order.status not in _OPEN and order.status is not wire.OrderStatus.COMPLETE:
                return await self._move(
                    e,
                    JournalState.REJECTED,
                    f"slice {len(ours)} {order.status.value}: {order.status_reason}",
                    order.order_id,
                )

    # CANCEL / MODIFY --------------------------------------------------

    async def _target(self, e: dict) -> tuple[wire.Order | None, str | None, bool]:
        """(order on main, why not, hold?)."""
        if e["target_order_id"]:
            try:
                return await self._answered(self.client.order(e["target_order_id"])), None, False
            except be.NotFound:
                return None, f"main has no order {e['target_order_id']}", False
        tcoid = e["target_client_order_id"]
        if not tcoid:
            return None, "the entry names no target order", False
        try:
            return await self._answered(self.client.order_by_client_id(tcoid)), None, False
        except be.NotFound:
            pass
        local = await self._db(self._journal_state_of, tcoid)
        if local is None:
            return None, f"main has no order {tcoid}", False
        seq, state, reason = local
        if state in (JournalState.HELD.value, JournalState.CONFLICT.value):
            return None, f"its order (seq {seq}) is {state}: decide that entry first", True
        return (
            None,
            f"its order (seq {seq}) never reached main ({state}{': ' + reason if reason else ''})",
            False,
        )

    async def _cancel_or_modify(
        self, e: dict, kind: JournalKind, main_date: date, stale_after: int
    ) -> EntryOutcome | None:
        resumed = e["state"] == JournalState.SENT.value
        order, why_not, hold = await self._target(e)
        if order is None:
            return await self._move(e, JournalState.HELD if hold else JournalState.MOOT, why_not)
        verb = "cancel" if kind is JournalKind.CANCEL else "modify"
        if order.status not in _OPEN:
            if resumed and kind is JournalKind.CANCEL and order.status is wire.OrderStatus.CANCELLED:
                return await self._move(
                    e, JournalState.APPLIED, "found cancelled after an unknown outcome", order.order_id
                )
            return await self._move(
                e,
                JournalState.MOOT,
                f"order {order.order_id} is {order.status.value} on main: nothing to {verb}",
                order.order_id,
            )
        p = e["payload"]
        change = None
        if kind is JournalKind.MODIFY:
            try:
                change = wire.OrderModify(
                    quantity=p.get("quantity"), price=p.get("price"), trigger_price=p.get("trigger_price")
                )
            except ValueError as exc:
                return await self._move(e, JournalState.REJECTED, f"unreadable journal payload: {exc}")
            if resumed and _already_modified(order, change):
                return await self._move(
                    e, JournalState.APPLIED, "found modified after an unknown outcome", order.order_id
                )
        if not resumed:
            why = self._stale(e, main_date, stale_after)
            if why:
                return await self._move(e, JournalState.HELD, f"stale: {why}", order.order_id)
            await self._move(e, JournalState.SENT)
        try:
            if kind is JournalKind.CANCEL:
                done = await self._sent(order.client_id, self.client.cancel_order(order.order_id))
            else:
                done = await self._sent(order.client_id, self.client.modify_order(order.order_id, change))
        except be.Rejected as exc:
            if exc.code == "not_open":
                return await self._move(
                    e,
                    JournalState.MOOT,
                    f"order {order.order_id} closed meanwhile: {exc.message}",
                    order.order_id,
                )
            return await self._move(
                e, JournalState.REJECTED, f"{exc.code or 'rejected'}: {exc.message}", order.order_id
            )
        except be.NotFound as exc:
            return await self._move(e, JournalState.MOOT, exc.message, order.order_id)
        except be.Forbidden as exc:
            return await self._move(
                e, JournalState.HELD, f"not allowed for this session: {exc.message}", order.order_id
            )
        return await self._move(e, JournalState.APPLIED, f"{verb} done ({done.status.value})", done.order_id)


def _already_modified(order: wire.Order, change: wire.OrderModify) -> bool:
    want = change.model_dump(exclude_none=True)
    return bool(want) and all(getattr(order, k) == v for k, v in want.items())


async def replay(
    store: Store,
    client: BackendClient,
    *,
    wait_s: float = 0.0,
    holder: str | None = None,
    offload: bool = False,
) -> ReplayResult:
    """One replay pass (see ``Replayer``)."""
    return await Replayer(store, client, holder=holder, offload=offload).run(wait_s=wait_s)
