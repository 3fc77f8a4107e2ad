"""Exactly-once replay of the backup journal to the main system.

Why it is built this way (issue 5; DESIGN.md "The journal"):

* Entries go in journal order (``seq``) for each client: an action a user takes while
  the replay runs is journaled behind it (a higher seq) and is picked up in the same
  pass, so nothing overtakes anything for a client.  Different clients' entries are
  independent, so a run of consecutive entries of one kind (a whole-book square-off,
  the cut-off's cancels, then its legs) is sent in per-client lanes, at most ``lanes``
  clients at once: each lane takes its client's entries one after another in seq
  order, a lane is only ever worked by one task, and the next run of another kind
  starts only when every lane of the run before it has finished (so the cut-off's
  cancels all reach main before any of its legs).  Every entry goes through exactly
  the same committed state moves as when sent alone; the store work of the lanes is
  done one call at a time, and the moves that several lanes are waiting for are
  committed together (one transaction, one lease renewal), each lane going on only
  once its own move is committed.  A lane that must stop the pass (main gone, the
  session refused, the lease lost) stops the others at their next entry; what they
  had in flight finishes and is committed first.
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
* Main's positions are fetched once per client per pass and fetched again when the
  position wanted is one that something was sent for since the fetch (an order can
  change only the position it trades: a place or a modify can fill) or when the fetch
  is older than ``POSITION_MAX_AGE_S``.  So the quantity of every square-off slice is
  computed from a position fetched after the last send for that position, and it
  never overshoots.  A slice that main answers as created now and COMPLETE, filled in
  full for the whole rest of that position (nothing else of ours working), ends the
  entry as flat without another read: a whole-book square-off costs one POST a leg
  and one GET a client.
* A SQUARE_OFF is an intent ("flatten"), recomputed against main's LIVE position at
  replay time and sent as MARKET orders of at most the freeze quantity.  Slice k has
  the deterministic id ``{client_order_id}-{k}``; on resume (the entry found SENT)
  every slice is looked up, one GET each, before the next is computed.  A rule's shared
  id (``shared_id``: sync.rms, the same ids on every console of a dealer) is looked up
  in the client's orders on main, read once per client and pass (one GET for all its
  entries, at most ``POSITION_MAX_AGE_S`` old); should another console send a slice
  after that read, main refuses ours with 409 (the id's parameters differ) or answers
  200 with its order (the same), and on a 409 the slices are looked up one by one
  and the entry goes on from them: main's idempotency key is the guard either way.
  Already flat: moot.  The position's sign flipped since the intent: conflict, held
  for a person.  It never sells more than the live position (never overshoots).
* Stale entries (older than ``Policy.stale_after_minutes`` or from an earlier trading
  day than main's) are held for a supervisor, not sent.
* One replayer per store: the replay lease (sync/lease.py), renewed in the same
  transaction as every state move (so a replayer that lost its lease cannot commit
  anything).
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
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from backend_client import errors as be
from backend_client.client import BackendClient
from contract import clock, wire
from contract.enums import OPEN_STATUSES, value_of
from contract.limits import MAX_SLICES  # a square-off needing more orders is surely wrong: held
from contract.protection import protected_price
from localstore import replay_store
from localstore.db import Store
from localstore.models import JournalKind, JournalState
from sync.identity import check_enrolled
from sync.lease import LEASE_TTL_S, default_holder, release_lease, take_lease
from sync.trading.held import RELEASED_PREFIX
from sync.trading.squareoff import slice_count, slices

log = logging.getLogger("lifeboat.replay")

CRASH_EXIT_CODE = 77  # the exit code of a process the crash tests end at a step (see after_step)
# Test seam (see the module docstring): called with the step count after every step.
after_step: Callable[[int], None] | None = None
BATCH = 1000
LANES = 8  # clients whose entries are sent at once (see the module docstring)
POSITION_MAX_AGE_S = 2.0  # a client's positions fetched longer ago than this are fetched again before use


def utcnow() -> datetime:
    return clock.utcnow()


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


# --------------------------------------------------------------------------- the replayer


class Replayer:
    """One replay pass over one store, sending with one BackendClient.

    ``offload=True`` runs the store work in a worker thread (the runtime: its event
    loop must never wait on a disk flush); the CLI runs it inline.  ``lanes``: how many
    clients' entries are sent at once (None: ``LANES``; 1: one entry at a time, in seq order)."""

    def __init__(
        self,
        store: Store,
        client: BackendClient,
        *,
        holder: str | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
        clock: Callable[[], datetime] = utcnow,
        offload: bool = False,
        lanes: int | None = None,
    ) -> None:
        lanes = LANES if lanes is None else lanes
        if lanes < 1:
            raise ValueError("lanes must be >= 1")
        self.store = store
        self.client = client
        self.holder = holder or default_holder(store.console_id)
        self.lease_ttl_s = lease_ttl_s
        self.clock = clock
        self.offload = offload
        self.lanes = lanes
        self.steps = 0
        self._instruments: dict[tuple[str, str], tuple[int, int]] = {}
        self._prices: dict[tuple[str, str], tuple[Any, Any, Any] | None] = {}
        # client_id -> (monotonic time of the fetch, {(exchange, symbol, product): (net, last price)})
        self._positions: dict[str, tuple[float, dict[tuple[str, str, str], tuple[int, Any]]]] = {}
        # client_id -> the positions something was sent for since that fetch (read again before use)
        self._touched: dict[str, set[tuple[str, str, str]]] = {}
        # client_id -> (monotonic time of the fetch, {client_order_id: order}): main's orders of the
        # client, for the lookups of shared ids (see the module docstring)
        self._main_orders: dict[str, tuple[float, dict[str, wire.Order]]] = {}
        self._db_lock = asyncio.Lock()  # the lanes' store work, one call at a time
        self._pending_moves: list[tuple[replay_store.Move, asyncio.Future]] = []
        self._seen = 0
        self._processed = 0
        self.progress: tuple[int, int] = (0, 0)  # (processed, seen) for a status bar

    async def _db(self, fn, *args, **kw):
        if self.offload:
            async with self._db_lock:  # lanes never wait on each other's write transactions
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
        while True:
            batch = await self._db(self._next_batch, last)
            if not batch:
                return
            if not self._seen:  # entries to send: only from the console enrolled on this home (sync.identity)
                await self._db(check_enrolled, self.store)
            last = batch[-1]["seq"]
            for run in _runs_of_one_kind(batch):
                stopped = await self._run_lanes(run, result, health.trading_date, stale_after)
                if stopped is not None:
                    result.status, result.stopped_reason = "stopped", stopped
                    return

    async def _run_lanes(
        self, run: list[dict], result: ReplayResult, main_date: date, stale_after: int
    ) -> str | None:
        """Send a run of consecutive entries of one kind in per-client lanes (see the module
        docstring); their outcomes go to ``result`` in seq order.  Returns why the pass must
        stop, else None.  An unexpected error stops the other lanes too and is raised once
        every lane has finished what it had in flight."""
        if len(run) > 1 and str(value_of(run[0]["kind"])) == JournalKind.SQUARE_OFF.value:
            await self._prefetch_instruments(run)
        lanes: dict[Any, list[dict]] = {}
        for e in run:
            lanes.setdefault(e["client_id"], []).append(e)
        todo = list(lanes.values())
        todo.reverse()  # popped from the end: lanes start in the order of their first entry
        outcomes: list[EntryOutcome] = []
        stops: list[str] = []
        errors: list[BaseException] = []

        async def worker() -> None:
            while todo and not (stops or errors):
                for e in todo.pop():
                    if stops or errors:
                        return
                    self._seen += 1
                    self.progress = (self._processed, self._seen)
                    try:
                        outcome = await self._one(e, main_date, stale_after)
                    except _Stop as stop:
                        stops.append(str(stop))
                        return
                    except Exception as exc:  # noqa: BLE001 - raised below, once every lane has stopped
                        errors.append(exc)
                        return
                    self._processed += 1
                    if outcome is not None:
                        outcomes.append(outcome)

        try:
            await asyncio.gather(*(worker() for _ in range(min(self.lanes, len(lanes)))))
        finally:
            result.outcomes.extend(sorted(outcomes, key=lambda o: o.seq))
        if errors:
            raise errors[0]
        return stops[0] if stops else None

    async def _handshake(self) -> str | None:
        """Before the first entry: checkpoint the audit chain and send main the newest
        checkpoint (``purpose: "replay"``) with the rows since the last one it witnessed
        (localstore.checkpoints).  Main refuses it (409) when this chain does not extend
        the one it witnessed, and then nothing is sent: the reason, else None.  Main not
        taking checkpoints now (unavailable, key not registered) does not stop the pass:
        the checkpoints stay queued."""
        from localstore import checkpoints
        from sync import checkpoint_send

        await self._db(checkpoints.make, self.store, mode="RECOVERING", reason="replay")
        try:
            sent = await checkpoint_send.flush(
                self.store, self.client, purpose="replay", offload=self.offload, resend_newest=True
            )
        except checkpoint_send.ChainRefused as exc:
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
        return replay_store.stale_after_minutes(self.store)

    def _next_batch(self, after_seq: int) -> list[dict]:
        return replay_store.work_after(self.store, after_seq, BATCH)

    def _journal_state_of(self, client_order_id: str) -> tuple[int, str, str | None] | None:
        found = replay_store.entry_state(self.store, client_order_id)
        if found is None:
            return None
        seq, state, reason = found
        return seq, str(value_of(state)), reason

    def _instrument(self, exchange: str, symbol: str) -> tuple[int, int] | None:
        key = (exchange, symbol)
        if key not in self._instruments:
            limits = replay_store.instrument_limits(self.store, exchange, symbol)
            if limits is None:
                return None
            self._instruments[key] = limits
        return self._instruments[key]

    async def _instrument_of(self, e: dict) -> tuple[int, int] | None:
        """(freeze quantity, lot size) of the entry's instrument: read once per pass."""
        key = (str(value_of(e["exchange"])), e["symbol"])
        if key in self._instruments:
            return self._instruments[key]
        return await self._db(self._instrument, *key)

    async def _prefetch_instruments(self, run: list[dict]) -> None:
        """The reference data of a run's instruments, in one store read before its lanes start
        (else each lane would read each instrument on its own)."""
        keys = {
            (str(value_of(e["exchange"])), e["symbol"])
            for e in run
            if e["exchange"] is not None and e["symbol"] is not None
        }
        keys -= self._instruments.keys()
        if not keys:
            return
        refs = await self._db(replay_store.instrument_refs, self.store, sorted(keys))
        for key, (freeze, lot, tick, lower, upper) in refs.items():
            self._instruments[key] = (freeze, lot)
            self._prices[key] = (tick, lower, upper)

    def _commit_moves(self, moves: list[replay_store.Move]) -> None:
        now = self.clock()
        moved = replay_store.move_entries(
            self.store,
            holder=self.holder,
            lease_expires_at=now + timedelta(seconds=self.lease_ttl_s),
            moves=moves,
            now=now,
        )
        if not moved:
            raise _LeaseLost("the replay lease was taken by another replayer; stopped")

    async def _commit(self, move: replay_store.Move) -> None:
        """Commit one state move before its entry's next step.  With lanes and the store work
        offloaded, the moves the lanes ask for meanwhile are committed together (one
        transaction, one lease renewal, one thread hop): each lane still waits for its own
        move's commit, so nothing is sent for an entry before its SENT is committed."""
        if not self.offload or self.lanes == 1:
            await self._db(self._commit_moves, [move])
            return
        done = asyncio.get_running_loop().create_future()
        self._pending_moves.append((move, done))
        async with self._db_lock:
            if not done.done():  # not committed by another lane's call meanwhile: this one takes them all
                batch, self._pending_moves = self._pending_moves, []
                try:
                    await asyncio.to_thread(self._commit_moves, [m for m, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every lane of the batch gets it (_LeaseLost ...)
                    for _, fut in batch:
                        fut.set_exception(exc)
                except BaseException:  # cancelled: whether it was committed is unknown (looked up later)
                    for _, fut in batch:
                        fut.cancel()
                    raise
                else:
                    for _, fut in batch:
                        fut.set_result(None)
        await done

    async def _move(
        self, e: dict, state: JournalState, reason: str | None = None, main_order_id: str | None = None
    ) -> EntryOutcome | None:
        sent = state is JournalState.SENT
        # SENT keeps the reason (a supervisor's release); it counts an attempt
        await self._commit(
            replay_store.Move(
                e["seq"], state, reason, sent, main_order_id, sent, self.client.base_url if sent else None
            )
        )
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
            str(value_of(e["kind"])),
            e["client_order_id"],
            e["client_id"],
            _text(e["exchange"]),
            e["symbol"],
            _text(e["product"]),
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
        kind = JournalKind(e["kind"])  # a member or its stored string alike
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

    async def _sent(self, client_id: str, position: tuple[str, str, str], coro):
        """A request that may change main's ``position`` (exchange, symbol, product) of
        ``client_id``: it is read from main again before its next use (whatever the
        answer, even none).  An order changes no other position."""
        self._touched.setdefault(client_id, set()).add(position)
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
                sent_to = e.get("sent_to")
                if sent_to and sent_to != self.client.base_url:
                    # sent to another site (main, before the switch to the DR site) and its answer
                    # lost: "not here" may only mean replication had not carried it there
                    return await self._move(
                        e,
                        JournalState.HELD,
                        f"outcome unknown: sent to {sent_to}, whose answer was lost, and not found on "
                        f"{self.client.base_url} (replication may not have carried it): a person decides",
                    )
                # never reached the site it was sent to: safe to send now
        why = self._stale(e, main_date, stale_after)
        if why:
            return await self._move(e, JournalState.HELD, f"stale: {why}")
        try:
            request = self._order_request(e)
        except (ValueError, KeyError, TypeError) as exc:
            return await self._move(e, JournalState.REJECTED, f"unreadable journal payload: {exc}")
        await self._move(e, JournalState.SENT)
        try:
            res = await self._sent(e["client_id"], _position_of(e), self.client.place_order(request))
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
        for this position (see the module docstring)."""
        client_id = e["client_id"]
        key = _position_of(e)
        cached = self._positions.get(client_id)
        if (
            cached is None
            or key in self._touched.get(client_id, ())
            or time.monotonic() - cached[0] > POSITION_MAX_AGE_S
        ):
            fetched_at = time.monotonic()
            touched = set(self._touched.get(client_id, ()))
            rows = await self._answered(self.client.positions(client_id))
            cached = (
                fetched_at,
                {(p.exchange.value, p.symbol, p.product.value): (p.net_quantity, p.last_price) for p in rows},
            )
            self._positions[client_id] = cached
            # what was sent before this read is in it (one lane per client: nothing was sent meanwhile)
            self._touched[client_id] = self._touched.get(client_id, set()) - touched
        return cached[1].get(key, (0, None))[0]

    def _last_price(self, e: dict):
        """Main's last price for the entry's position, from the fetch ``_live_net`` made."""
        cached = self._positions.get(e["client_id"])
        return cached[1].get(_position_of(e), (0, None))[1] if cached else None

    async def _shared_slices(self, e: dict) -> list[wire.Order]:
        """The slices of a shared id already on main, from the client's orders read once per
        pass (see the module docstring)."""
        client_id = e["client_id"]
        cached = self._main_orders.get(client_id)
        if cached is None or time.monotonic() - cached[0] > POSITION_MAX_AGE_S:
            fetched_at = time.monotonic()
            try:
                rows = await self._answered(self.client.orders(client_id))
            except be.ProtocolError:  # an answer we cannot take whole (a huge day): one GET a slice
                return await self._looked_up(e["client_order_id"])
            cached = (fetched_at, {o.client_order_id: o for o in rows})
            self._main_orders[client_id] = cached
        found: list[wire.Order] = []
        while len(found) < MAX_SLICES:
            order = cached[1].get(f"{e['client_order_id']}-{len(found) + 1}")
            if order is None:
                break
            found.append(order)
        return found

    async def _looked_up(self, coid: str) -> list[wire.Order]:
        """The slices ``{coid}-1``, ``-2`` ... on main, one GET each, in order, until one is missing."""
        found: list[wire.Order] = []
        while len(found) < MAX_SLICES:
            try:
                found.append(await self._answered(self.client.order_by_client_id(f"{coid}-{len(found) + 1}")))
            except be.NotFound:
                break
        return found

    async def _protected(self, e: dict, side: wire.Side) -> Any:
        """The LIMIT price of a protected square-off slice (contract.protection), or None
        (a MARKET order): the entry's payload names the rule, sync.rms writes it."""
        rule = e["payload"].get("protection")
        if not rule or rule.get("rule", "market") == "market":
            return None
        key = (str(value_of(e["exchange"])), e["symbol"])
        if key not in self._prices:  # the local book's reference data: read once per pass
            self._prices[key] = await self._db(replay_store.instrument_prices, self.store, *key)
        band = self._prices[key]
        if band is None:
            return None
        tick, lower, upper = band
        return protected_price(
            side.value,
            self._last_price(e),
            tick=tick,
            lower_band=lower,
            upper_band=upper,
            rule=rule["rule"],
            pct=float(rule.get("pct", 2.0)),
        )

    async def _square_off(self, e: dict, main_date: date, stale_after: int) -> EntryOutcome | None:
        coid = e["client_order_id"]
        p = e["payload"]
        intent_side = p.get("side_at_intent")  # SELL: the position was long when the dealer asked
        intent_qty = p.get("quantity_at_intent")
        ours: list[wire.Order] = []
        # some slices may be on main: look each up, in order.  A rule's shared id (sync.rms: every
        # console of the dealer journals the same ids) may have been sent by another console too
        if e["state"] == JournalState.SENT.value:
            ours = await self._looked_up(coid)
        elif p.get("shared_id"):
            ours = await self._shared_slices(e)
        looked_up_again = False
        why = self._stale(e, main_date, stale_after)
        if why:
            already = f" ({len(ours)} order(s) already on main)" if ours else ""
            return await self._move(
                e, JournalState.HELD, f"stale: {why}{already}", ours[-1].order_id if ours else None
            )
        inst = await self._instrument_of(e)
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
            working = sum(o.quantity - o.filled_quantity for o in ours if o.status in OPEN_STATUSES)
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
            limit = await self._protected(e, closing)
            request = wire.OrderRequest(
                client_order_id=f"{coid}-{len(ours) + 1}",
                client_id=e["client_id"],
                exchange=value_of(e["exchange"]),
                symbol=e["symbol"],
                side=closing,
                quantity=qty,
                product=value_of(e["product"]),
                order_type=wire.OrderType.MARKET if limit is None else wire.OrderType.LIMIT,
                price=limit,
                validity=wire.Validity.DAY,
            )
            if e["state"] != JournalState.SENT.value:
                await self._move(e, JournalState.SENT)
            after = f" after {len(ours)} order(s)" if ours else ""
            try:
                res = await self._sent(e["client_id"], _position_of(e), self.client.place_order(request))
            except be.Rejected as exc:
                return await self._move(
                    e, JournalState.REJECTED, f"{exc.code or 'rejected'}{after}: {exc.message}", done_ids
                )
            except be.IdempotencyConflict as exc:
                if p.get("shared_id") and not looked_up_again:
                    # another console sent this slice since the client's orders were read: its
                    # slices are looked up one by one and the entry goes on from them (once)
                    looked_up_again = True
                    ours = await self._looked_up(coid)
                    continue
                return await self._move(
                    e, JournalState.CONFLICT, f"slice id already used on main: {exc.message}", done_ids
                )
            except (be.Forbidden, be.NotFound) as exc:
                return await self._move(
                    e, JournalState.HELD, f"not allowed for this session{after}: {exc.message}", done_ids
                )
            order = res.order
            ours.append(order)
            if order.status not in OPEN_STATUSES and order.status is not wire.OrderStatus.COMPLETE:
                return await self._move(
                    e,
                    JournalState.REJECTED,
                    f"slice {len(ours)} {order.status.value}: {order.status_reason}",
                    order.order_id,
                )
            if (
                res.created
                and order.status is wire.OrderStatus.COMPLETE
                and order.filled_quantity == qty == remaining == abs(net)
            ):
                # our own new order filled in full the whole position read after the last send for
                # it: flat, with no other read (see the module docstring)
                return await self._move(
                    e,
                    JournalState.APPLIED,
                    f"flat on main after {len(ours)} order(s) (the last filled the rest in full)",
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
        if order.status not in OPEN_STATUSES:
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
            position = (order.exchange.value, order.symbol, order.product.value)
            if change is None:  # a CANCEL (a MODIFY has its change here, or was rejected above)
                done = await self._sent(order.client_id, position, self.client.cancel_order(order.order_id))
            else:
                done = await self._sent(
                    order.client_id, position, self.client.modify_order(order.order_id, change)
                )
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


def _position_of(e: dict) -> tuple[str, str, str]:
    """The (exchange, symbol, product) of a journal entry's position."""
    return (str(value_of(e["exchange"])), e["symbol"], str(value_of(e["product"])))


def _runs_of_one_kind(batch: list[dict]) -> list[list[dict]]:
    """The batch cut into runs of consecutive entries of one kind, in seq order."""
    runs: list[list[dict]] = []
    for e in batch:
        kind = str(value_of(e["kind"]))
        if runs and str(value_of(runs[-1][0]["kind"])) == kind:
            runs[-1].append(e)
        else:
            runs.append([e])
    return runs


def _text(value: Any) -> str | None:
    """A journal column's stored string (None stays None)."""
    return None if value is None else str(value_of(value))


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
