"""The intraday cut-off: at the segment's cut-off (exchange time), pending MIS orders are
cancelled first, then every MIS position of the scope is squared off.

Why through the journal, in every mode: the journal already sends an intent to main
exactly once (sync.replay), recomputes a square-off against main's LIVE position so it can
never overshoot, slices it at the freeze quantity and looks every slice up by its id after
a crash.  So the cut-off journals its intents (CANCELs first, then one SQUARE_OFF per
position, in one transaction with the row that says the rule ran today) and, when main
answers, replays them at once; in BACKUP they wait for the replay like any other action.

Once per console and trading day: the ``rms_runs`` row is written in the transaction that
journals the intents, so a restart one second after the cut-off finds it and does nothing.
Two consoles of one dealer: every id is deterministic (the day, the rule, the position), so
both journal the same ids; the replay looks a shared id's slices up on main before sending
any (``shared_id``), and main's idempotency makes a second sender a no-op.  Nothing is sent
twice; the deterministic ids are the guard at main, not the editable store.

After the pass, main's own positions are read again: a MIS position the local mirror did
not hold yet (a fill in the last second) is squared off in a second round, with its own ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from backend_client import errors as be
from backend_client.client import BackendClient
from contract import clock
from contract.enums import Product, value_of
from localstore import rms_store, trading_store
from localstore.db import Store
from localstore.journal_states import KIND_CANCEL, KIND_SQUARE_OFF
from sync.rms.settings import SEGMENTS, RmsSettings
from sync.trading import desk, journal
from sync.trading.desk import Actor
from sync.trading.journal import Intent
from sync.trading.squareoff import Leg, check_legs, position_legs

log = logging.getLogger("lifeboat.rms")

RULE = "intraday_cutoff"
MIS = Product.MIS.value
MAX_ROUNDS = 3  # the journal's pass, then main's positions read again (twice at most)


# --------------------------------------------------------------------------- time


def local_time(settings: RmsSettings, now: datetime) -> datetime:
    return now.astimezone(settings.zone)


def at(settings: RmsSettings, trading_date: date, hhmm: time) -> datetime:
    """``hhmm`` exchange time on ``trading_date``, as an aware datetime (UTC)."""
    return datetime.combine(trading_date, hhmm, settings.zone).astimezone(UTC)


def cutoff_at(settings: RmsSettings, segment: str, trading_date: date) -> datetime:
    return at(settings, trading_date, settings.intraday_cutoff[segment])


def close_at(settings: RmsSettings, trading_date: date) -> datetime:
    return at(settings, trading_date, settings.market_close)


def due(settings: RmsSettings, segment: str, trading_date: date, now: datetime) -> bool:
    """The cut-off has passed and the market is not closed yet (a console started after the
    close does not square off: the exchange's own end of day has done it)."""
    return cutoff_at(settings, segment, trading_date) <= now < close_at(settings, trading_date)


@dataclass(frozen=True)
class Upcoming:
    segment: str
    cutoff: datetime
    seconds_left: float
    warnings_at: tuple[datetime, ...]


def upcoming(settings: RmsSettings, trading_date: date, now: datetime) -> list[Upcoming]:
    """Each segment's cut-off today, soonest first (past ones included, seconds_left <= 0)."""
    out = []
    for seg in SEGMENTS:
        when = cutoff_at(settings, seg, trading_date)
        warns = tuple(when - timedelta(minutes=m) for m in settings.warn_before_minutes)
        out.append(Upcoming(seg, when, (when - now).total_seconds(), warns))
    return sorted(out, key=lambda u: u.cutoff)


# --------------------------------------------------------------------------- ids and plan


def rule_client_order_id(trading_date: date, tag: str, *parts: object) -> str:
    """A rule's deterministic client_order_id: the same on every console for the same day,
    rule and position (or target order), so main's idempotency catches a second sender."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16].upper()
    return f"RMS{trading_date:%y%m%d}{tag}{digest}"


@dataclass
class CutoffPlan:
    segment: str
    trading_date: date
    legs: list[Leg] = field(default_factory=list)
    cancels: list[dict] = field(default_factory=list)
    already: bool = False  # the rule had run today: nothing planned
    round: int = 0

    def as_dict(self) -> dict:
        return {
            "segment": self.segment,
            "trading_date": self.trading_date.isoformat(),
            "already_done": self.already,
            "legs": [leg.as_dict() for leg in self.legs],
            "cancels": self.cancels,
        }


def cancel_intent(trading_date: date, rule: str, tgt, reason: str) -> tuple[Intent, dict]:
    """A rule's CANCEL of ``tgt`` with its deterministic id, and the line a report lists for it."""
    coid = rule_client_order_id(trading_date, "C", rule, tgt.order_id or tgt.client_order_id)
    it = desk.target_intent(KIND_CANCEL, tgt, {"reason": reason, "rule": rule})
    it.client_order_id = coid
    line = {
        "order_id": tgt.order_id,
        "client_order_id": tgt.client_order_id,
        "client_id": tgt.client_id,
        "exchange": tgt.exchange,
        "symbol": tgt.symbol,
        "product": tgt.product,
        "cancel_client_order_id": coid,
        "outcome": "planned",
    }
    return it, line


def squareoff_intents(
    conn, legs: list[Leg], trading_date: date, rule: str, round_no: int, settings: RmsSettings
) -> list[Intent]:
    """A rule's SQUARE_OFF intents, one per leg (checked against the instruments' limits first),
    each with its deterministic shared id (set on the leg too) and the protection rule."""
    if legs:
        check_legs(legs, {(value_of(i.exchange), i.symbol): i for i in trading_store.instrument_limits(conn)})
    protection = {"rule": settings.squareoff_protection, "pct": settings.protection_percent}
    intents = []
    for leg in legs:
        leg.client_order_id = rule_client_order_id(
            trading_date, "S", rule, round_no, leg.client_id, leg.exchange, leg.symbol, leg.product
        )
        intents.append(
            Intent(
                KIND_SQUARE_OFF,
                leg.client_id,
                leg.exchange,
                leg.symbol,
                leg.product,
                payload={
                    "flatten": True,
                    "side_at_intent": leg.side,
                    "quantity_at_intent": leg.quantity,
                    "rule": rule,
                    "shared_id": True,
                    "protection": protection,
                },
                client_order_id=leg.client_order_id,
            )
        )
    return intents


def not_journaled(conn, intents: list[Intent]) -> list[Intent]:
    """``intents`` less those whose deterministic id the journal already holds."""
    have = rms_store.existing_client_order_ids(
        conn, [it.client_order_id for it in intents if it.client_order_id]
    )
    return [it for it in intents if it.client_order_id not in have]


def fill_outcomes(store: Store, legs: list[Leg], cancels: list[dict]) -> None:
    """Each leg's and cancel's journal state (applied, moot, rejected, held ...) after a pass."""
    from localstore import journal_store

    coids = [leg.client_order_id for leg in legs if leg.client_order_id]
    coids += [c["cancel_client_order_id"] for c in cancels]
    states = journal_store.states_of(store, coids)
    for leg in legs:
        st = states.get(leg.client_order_id or "")
        if st:
            leg.outcome, leg.reason = st
    for c in cancels:
        st = states.get(c["cancel_client_order_id"])
        if st:
            c["outcome"] = st[0]
            if st[1]:
                c["reason"] = st[1]


def _in_segment(exchange, segment: str) -> bool:
    return str(value_of(exchange)) == segment


def plan_intents(
    conn, actor: Actor, segment: str, settings: RmsSettings, *, round_no: int = 0, positions=None
) -> tuple[CutoffPlan, list[Intent]]:
    """What the cut-off journals, read from the local book in the caller's transaction (or
    from ``positions``, main's, for a later round).  Round 0 answers ``already`` when the
    rule ran today."""
    td = actor.trading_date
    plan = CutoffPlan(segment, td, round=round_no)
    if round_no == 0 and rms_store.run_done(conn, td, RULE, segment):
        plan.already = True
        return plan, []
    intents: list[Intent] = []
    if round_no == 0:  # cancels first: a pending MIS order must not fill after the square-off
        for tgt in desk.open_orders_in_scope(conn, actor, None):
            if tgt.product != MIS or not _in_segment(tgt.exchange, segment):
                continue
            it, line = cancel_intent(td, RULE, tgt, "intraday cut-off")
            intents.append(it)
            plan.cancels.append(line)
    rows = positions if positions is not None else trading_store.open_positions(conn)
    mis = [r for r in rows if str(value_of(r.product)) == MIS and _in_segment(r.exchange, segment)]
    legs = position_legs(mis, in_scope=actor.in_scope)
    intents += squareoff_intents(conn, legs, td, RULE, round_no, settings)
    plan.legs = legs
    return plan, not_journaled(conn, intents)


# --------------------------------------------------------------------------- run


@dataclass
class CutoffResult:
    plan: CutoffPlan
    mode: str
    journal_seqs: list[int] = field(default_factory=list)
    replay_status: str | None = None  # None: not replayed here (BACKUP: the journal waits)
    rounds: int = 1
    left_on_main: list[dict] = field(default_factory=list)  # MIS positions still open after the last round

    def as_dict(self) -> dict:
        return {
            **self.plan.as_dict(),
            "mode": self.mode,
            "journal_seqs": self.journal_seqs,
            "replay_status": self.replay_status,
            "rounds": self.rounds,
            "left_on_main": self.left_on_main,
        }


def _journal(
    store: Store,
    actor: Actor,
    segment: str,
    settings: RmsSettings,
    mode: str,
    now: datetime,
    round_no: int,
    positions=None,
) -> tuple[CutoffPlan, list[int]]:
    holder: dict = {}

    def build(conn):
        plan, intents = plan_intents(conn, actor, segment, settings, round_no=round_no, positions=positions)
        holder["plan"] = plan
        if round_no == 0 and not plan.already:
            rms_store.record_run(
                conn,
                trading_date=actor.trading_date,
                rule=RULE,
                scope=segment,
                at=now,
                mode=mode,
                entries=len(intents),
                detail={
                    "cutoff": cutoff_at(settings, segment, actor.trading_date).isoformat(),
                    "legs": [(leg.client_id, leg.symbol, leg.side, leg.quantity) for leg in plan.legs[:200]],
                    "cancels": len(plan.cancels),
                },
            )
        return intents

    receipts = journal.write(
        store,
        build,
        user_id=actor.user_id,
        mode=mode,
        trading_date=actor.trading_date,
        audit_action="rms_cutoff",
        audit_payload={
            "rule": RULE,
            "segment": segment,
            "round": round_no,
            "cutoff": cutoff_at(settings, segment, actor.trading_date).isoformat(),
            "at": now.isoformat(),
        },
        now=now,
    )
    plan = holder["plan"]
    by_coid = {r.client_order_id: r for r in receipts}
    for leg in plan.legs:
        leg.outcome = "journaled" if leg.client_order_id in by_coid else "already_journaled"
    for c in plan.cancels:
        c["outcome"] = "journaled" if c["cancel_client_order_id"] in by_coid else "already_journaled"
    return plan, [r.seq for r in receipts]


def dry_run(store: Store, actor: Actor, segment: str, settings: RmsSettings) -> CutoffPlan:
    with store.read_core() as conn:
        plan, _ = plan_intents(conn, actor, segment, settings)
    for leg in plan.legs:
        leg.outcome = "dry_run"
    for c in plan.cancels:
        c["outcome"] = "dry_run"
    return plan


async def run(
    store: Store,
    actor: Actor,
    segment: str,
    settings: RmsSettings,
    *,
    mode: str,
    client: BackendClient | None,
    now: datetime | None = None,
) -> CutoffResult:
    """Journal the cut-off's intents (once per day) and, with ``client`` (main answers),
    replay them now, then square off what main still shows open.  Without a client they
    wait in the journal for the replay (BACKUP)."""
    now = now or clock.utcnow()
    plan, seqs = await asyncio.to_thread(_journal, store, actor, segment, settings, mode, now, 0)
    result = CutoffResult(plan, mode, seqs)
    if client is None:
        return result
    if plan.already:
        # the day's run was journaled before: a restart mid-run (a crash, a stop) left some of its
        # entries unsent; they go now, exactly once (the replay looks each slice up first)
        prefix = rule_client_order_id(actor.trading_date, "", "")[: len("RMSyymmdd")]
        if await asyncio.to_thread(rms_store.unfinished_with_prefix, store, prefix):
            result.replay_status = await _replay(store, client)
        return result
    for round_no in range(1, MAX_ROUNDS + 1):
        result.replay_status = await _replay(store, client)
        fill_outcomes(store, result.plan.legs, result.plan.cancels)
        if result.replay_status != "done":
            return result
        try:
            live = [
                p
                for p in await client.positions()
                if p.net_quantity != 0
                and str(value_of(p.product)) == MIS
                and _in_segment(p.exchange, segment)
                and actor.in_scope(p.client_id)
            ]
        except (be.Unavailable, be.ProtocolError):
            return result
        result.left_on_main = [
            {
                "client_id": p.client_id,
                "exchange": p.exchange.value,
                "symbol": p.symbol,
                "net_quantity": p.net_quantity,
            }
            for p in live
        ]
        if not live or round_no == MAX_ROUNDS:
            return result
        more, more_seqs = await asyncio.to_thread(
            _journal, store, actor, segment, settings, mode, clock.utcnow(), round_no, live
        )
        result.rounds += 1
        result.journal_seqs += more_seqs
        plan.legs += more.legs
    return result


async def _replay(store: Store, client: BackendClient, attempts: int = 20) -> str:
    """One replay pass (the journal's exactly-once sending); another replayer holding the
    lease (the runtime's recovery) is waited for a little, then left to send them."""
    from sync.replay import Replayer

    status = "busy"
    for _ in range(attempts):
        res = await Replayer(store, client, offload=True).run()
        status = res.status
        if status != "busy":
            return status
        await asyncio.sleep(0.25)
    return status


def local_counts(store: Store, segment: str) -> dict[str, int]:
    """What the cut-off would touch now, from the local book: open MIS orders and MIS positions."""
    return rms_store.mis_counts(store, segment)
