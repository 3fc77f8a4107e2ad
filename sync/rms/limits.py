"""MTM-loss limits per client (issue 13): alerts as a client's MTM loss nears its limit, and
at the limit square-off mode (reduce-only for that client) and, where the policy says so, an
automatic square-off.  The runtime's risk engine (sync.rms.engine) runs ``MtmWatch`` every
few seconds; each step is written to the store with its audit row, so a restart neither
repeats an alert nor squares off twice.

The rules, and why:

- **Alerts** at ``mtm_alert_percent`` of ``max_mtm_loss`` (60/75/90 by default): once per
  client, level and trading day (``rms_client_state.alert_level``, the highest level
  reached: an MTM that jumps from 50% to 80% alerts once, at 75, as the exchanges' RMS do).
  Logged, audited (the rule, the client, the MTM, the limit, the percent) and told to the
  screens (``mtm_alert``).
- **Breach** at 100%: the client goes to square-off mode (``squareoff_mode``: the desks
  refuse any order that does not reduce its position, in every mode: sync.trading.policy
  ``check_mtm_squareoff``), audited, told (``mtm_breach``).  Square-off mode lasts the day.
- **Automatic square-off** when ``mtm_auto_squareoff``: the client's open orders cancelled,
  then every open position squared off, through the journal like the intraday cut-off (one
  transaction with the ``rms_runs`` row ``mtm_loss``/client that makes it once per client
  and day; deterministic ids, so a dealer's two consoles never both send; replayed at once
  while main answers, waiting for the replay in BACKUP; square-off slices protected).  Every
  product is squared off: the limit is on the client's whole MTM.
- **Stale prices never act**: a client whose MTM rests on prices older than
  ``stale_price_seconds`` (sync.rms.mtm: the stream is down, the local book's marks are old)
  raises no alert level and triggers no square-off.  One ``stale_prices`` notice (and log
  line) per stale episode says so, naming the clients whose stale figure would have acted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from backend_client import errors as be
from backend_client.client import BackendClient
from localstore import audit, rms_store, trading_store
from localstore.db import Store
from sync.rms import cutoff, mtm
from sync.rms.mtm import ClientRisk
from sync.rms.settings import RmsSettings
from sync.trading import desk, journal
from sync.trading.desk import Actor
from sync.trading.journal import Intent
from sync.trading.squareoff import Leg, position_legs

log = logging.getLogger("lifeboat.rms")

RULE = "mtm_loss"
BREACH = 100  # the alert level of a breach (percent of the limit)
EVERY_S = 5.0  # how often the runtime evaluates MTM (not every tick: one request to main each time)
MAX_ROUNDS = 3  # the journal's pass, then main's positions read again (twice at most)


@dataclass(frozen=True)
class MtmEvent:
    """What an evaluation wants a person to see: mtm_alert, mtm_breach, stale_prices,
    mtm_squareoff (done), mtm_squareoff_failed."""

    kind: str
    client_id: str | None
    message: str
    severity: str  # information, warning, error
    detail: dict


def level_of(used_pct: float | None, thresholds: tuple[int, ...]) -> int:
    """The highest alert level ``used_pct`` has reached (BREACH at 100%, 0: none)."""
    if used_pct is None:
        return 0
    if used_pct >= BREACH:
        return BREACH
    return max((t for t in thresholds if used_pct >= t), default=0)


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _numbers(r: ClientRisk) -> dict:
    """The numbers a rule acted on, as audited and logged."""
    return {
        "rule": RULE,
        "client_id": r.client_id,
        "mtm": str(r.mtm),
        "max_mtm_loss": None if r.max_mtm_loss is None else str(r.max_mtm_loss),
        "used_pct": None if r.used_pct is None else round(r.used_pct, 2),
        "source": r.source,
        "price_age_s": None if r.price_age_s is None else round(r.price_age_s, 1),
    }


# --------------------------------------------------------------------------- alert levels


def raise_level(store: Store, actor: Actor, r: ClientRisk, level: int, *, mode: str, now: datetime) -> bool:
    """Record ``level`` for the client today (square-off mode from BREACH on) with its audit
    row, in one transaction; False (nothing written) when today's level is already there
    (another process of this console got there first)."""
    td = actor.trading_date
    with store.write_core() as conn:
        st = rms_store.client_state(conn, td, r.client_id)
        if st is not None and st.alert_level >= level:
            return False
        breach = level >= BREACH
        rms_store.put_client_state(
            conn,
            trading_date=td,
            client_id=r.client_id,
            alert_level=level,
            squareoff_mode=breach or bool(st is not None and st.squareoff_mode),
            mtm=r.mtm,
            max_mtm_loss=r.max_mtm_loss,
            at=now,
        )
        audit.append_core(
            conn,
            user_id=actor.user_id,
            mode=mode,
            action="rms_mtm_breach" if breach else "rms_mtm_alert",
            payload={**_numbers(r), "level": level, "squareoff_mode": breach},
            at=now,
        )
    return True


# --------------------------------------------------------------------------- the square-off


@dataclass
class MtmSquareoff:
    """One client's automatic square-off (legs and cancels listed as ``squareoff --json`` does)."""

    client_id: str
    trading_date: date
    mode: str
    legs: list[Leg] = field(default_factory=list)
    cancels: list[dict] = field(default_factory=list)
    already: bool = False  # the rule had run today for this client: nothing journaled
    journal_seqs: list[int] = field(default_factory=list)
    replay_status: str | None = None  # None: not replayed here (BACKUP: the journal waits)
    rounds: int = 1
    left_on_main: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "rule": RULE,
            "client_id": self.client_id,
            "trading_date": self.trading_date.isoformat(),
            "mode": self.mode,
            "already_done": self.already,
            "legs": [leg.as_dict() for leg in self.legs],
            "cancels": self.cancels,
            "journal_seqs": self.journal_seqs,
            "replay_status": self.replay_status,
            "rounds": self.rounds,
            "left_on_main": self.left_on_main,
        }


def plan_intents(
    conn, actor: Actor, client_id: str, settings: RmsSettings, *, round_no: int = 0, positions=None
) -> tuple[MtmSquareoff, list[Intent]]:
    """What the square-off journals for one client, in the caller's transaction: the client's
    open orders cancelled (round 0), then one SQUARE_OFF per open position, from ``positions``
    (main's, when the caller has them) or the local book.  Round 0 answers ``already`` when
    the rule ran today for this client."""
    td = actor.trading_date
    plan = MtmSquareoff(client_id, td, "")
    if round_no == 0 and rms_store.run_done(conn, td, RULE, client_id):
        plan.already = True
        return plan, []
    intents: list[Intent] = []
    if round_no == 0:  # cancels first: a pending order must not add to the position afterwards
        for tgt in desk.open_orders_in_scope(conn, actor, client_id):
            it, line = cutoff.cancel_intent(td, RULE, tgt, "MTM-loss limit breached")
            intents.append(it)
            plan.cancels.append(line)
    rows = positions if positions is not None else trading_store.open_positions(conn, client_id)
    legs = position_legs(rows, client_id=client_id, in_scope=actor.in_scope)
    intents += cutoff.squareoff_intents(conn, legs, td, RULE, round_no, settings)
    plan.legs = legs
    return plan, cutoff.not_journaled(conn, intents)


def _journal(
    store: Store,
    actor: Actor,
    r: ClientRisk,
    settings: RmsSettings,
    mode: str,
    now: datetime,
    round_no: int,
    positions=None,
) -> tuple[MtmSquareoff, list[int]]:
    holder: dict = {}

    def build(conn):
        plan, intents = plan_intents(
            conn, actor, r.client_id, settings, round_no=round_no, positions=positions
        )
        holder["plan"] = plan
        if round_no == 0 and not plan.already:
            rms_store.record_run(
                conn,
                trading_date=actor.trading_date,
                rule=RULE,
                scope=r.client_id,
                at=now,
                mode=mode,
                entries=len(intents),
                detail={
                    **_numbers(r),
                    "legs": [(leg.symbol, leg.product, leg.side, leg.quantity) for leg in plan.legs[:200]],
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
        audit_action="rms_mtm_squareoff",
        audit_payload={**_numbers(r), "round": round_no, "at": now.isoformat()},
        now=now,
    )
    plan = holder["plan"]
    plan.mode = mode
    done = {x.client_order_id for x in receipts}
    for leg in plan.legs:
        leg.outcome = "journaled" if leg.client_order_id in done else "already_journaled"
    for c in plan.cancels:
        c["outcome"] = "journaled" if c["cancel_client_order_id"] in done else "already_journaled"
    return plan, [x.seq for x in receipts]


async def squareoff(
    store: Store,
    actor: Actor,
    r: ClientRisk,
    settings: RmsSettings,
    *,
    mode: str,
    client: BackendClient | None,
    now: datetime,
    positions=None,
) -> MtmSquareoff:
    """Journal the client's square-off (once per client and day) and, with ``client`` (main
    answers), replay it now, then square off what main still shows open.  Without a client
    the intents wait in the journal for the replay (BACKUP)."""
    result, seqs = await asyncio.to_thread(_journal, store, actor, r, settings, mode, now, 0, positions)
    result.journal_seqs = seqs
    if result.already or client is None:
        return result
    for round_no in range(1, MAX_ROUNDS + 1):
        result.replay_status = await cutoff._replay(store, client)
        cutoff.fill_outcomes(store, result.legs, result.cancels)
        if result.replay_status != "done":
            return result
        try:
            live = [p for p in await client.positions(r.client_id) if p.net_quantity != 0]
        except (be.Unavailable, be.ProtocolError):
            return result
        result.left_on_main = [
            {
                "exchange": p.exchange.value,
                "symbol": p.symbol,
                "product": p.product.value,
                "net_quantity": p.net_quantity,
            }
            for p in live
        ]
        if not live or round_no == MAX_ROUNDS:
            return result
        more, more_seqs = await asyncio.to_thread(
            _journal, store, actor, r, settings, mode, now, round_no, live
        )
        result.rounds += 1
        result.journal_seqs += more_seqs
        result.legs += more.legs
    return result


# --------------------------------------------------------------------------- the watch


class MtmWatch:
    """The MTM-loss rules as the runtime runs them: ``due`` every ``every_s`` of the injected
    clock, ``run`` evaluates the actor's scope and acts; ``risks`` is the last evaluation."""

    def __init__(self, every_s: float = EVERY_S) -> None:
        self.every_s = every_s
        self.last: datetime | None = None
        self.risks: list[ClientRisk] = []
        self.squareoffs: list[MtmSquareoff] = []  # every automatic square-off run here (screens, tests)
        self.stale_since: datetime | None = None  # the stale episode going on (None: prices fresh)
        self._done: set[tuple[date, str]] = set()  # clients squared off today (the store says so too)

    def due(self, now: datetime) -> bool:
        return self.last is None or now < self.last or (now - self.last).total_seconds() >= self.every_s

    async def run(
        self,
        store: Store,
        actor: Actor,
        settings: RmsSettings,
        *,
        mode: str,
        now: datetime,
        fetch: BackendClient | None = None,
        send: BackendClient | None = None,
    ) -> list[MtmEvent]:
        """One evaluation: MTM from main's positions (``fetch``: main answers) else the local
        book, for the actor's scope; alerts, breaches, square-offs (sent with ``send``, else
        journaled for the replay); one notice per stale episode."""
        self.last = now
        positions = None
        if fetch is not None:
            try:
                positions = await fetch.positions()
            except be.BackendError as exc:  # down, refused, unreadable: the local book, with its age
                log.info(
                    "risk rules: main's positions unavailable (%s); MTM from the local book",
                    getattr(exc, "message", exc),
                    extra={"event": "rms_mtm_source_local"},
                )
        risks = await asyncio.to_thread(
            mtm.client_risk,
            store,
            settings,
            now=now,
            trading_date=actor.trading_date,
            main_positions=positions,
            fetched_at=now,
        )
        risks = [r for r in risks if actor.in_scope(r.client_id)]
        self.risks = risks
        return await self.evaluate(
            store, actor, settings, risks, mode=mode, now=now, send=send, positions=positions
        )

    async def evaluate(
        self,
        store: Store,
        actor: Actor,
        settings: RmsSettings,
        risks: list[ClientRisk],
        *,
        mode: str,
        now: datetime,
        send: BackendClient | None = None,
        positions=None,
    ) -> list[MtmEvent]:
        events: list[MtmEvent] = []
        limited = [r for r in risks if r.max_mtm_loss is not None and r.max_mtm_loss > 0]
        stale = [r for r in limited if r.stale]
        events += self._stale_episode(stale, settings, now)
        for r in limited:
            if r.stale:
                continue  # never act on stale prices (the episode's notice says so)
            level = level_of(r.used_pct, settings.mtm_alert_percent)
            in_squareoff = r.squareoff_mode
            if level > r.alert_level and await asyncio.to_thread(
                raise_level, store, actor, r, level, mode=mode, now=now
            ):
                events.append(self._told(r, level, settings))
                in_squareoff = in_squareoff or level >= BREACH
            if (
                settings.mtm_auto_squareoff
                and in_squareoff
                and (actor.trading_date, r.client_id) not in self._done
            ):
                events += await self._squareoff(
                    store, actor, r, settings, mode=mode, now=now, send=send, positions=positions
                )
        return events

    def _told(self, r: ClientRisk, level: int, settings: RmsSettings) -> MtmEvent:
        detail = {**_numbers(r), "level": level}
        pct = f"{r.used_pct:.1f}%" if r.used_pct is not None else "-"
        if level >= BREACH:
            msg = (
                f"MTM-loss limit breached: client {r.client_id} MTM {_money(r.mtm)} is {pct} of its "
                f"limit {_money(r.max_mtm_loss)}: square-off mode, only orders that reduce its "
                f"positions are accepted" + ("; squaring it off" if settings.mtm_auto_squareoff else "")
            )
            log.error(msg, extra={"event": "rms_mtm_breach", **detail})
            return MtmEvent("mtm_breach", r.client_id, msg, "error", detail)
        msg = (
            f"MTM alert {level}%: client {r.client_id} MTM {_money(r.mtm)} is {pct} of its "
            f"MTM-loss limit {_money(r.max_mtm_loss)}"
        )
        log.warning(msg, extra={"event": "rms_mtm_alert", **detail})
        return MtmEvent("mtm_alert", r.client_id, msg, "warning" if level < 90 else "error", detail)

    def _stale_episode(self, stale: list[ClientRisk], settings: RmsSettings, now: datetime) -> list[MtmEvent]:
        if not stale:
            if self.stale_since is not None:
                log.info(
                    "risk rules: prices fresh again; MTM-loss rules act again",
                    extra={
                        "event": "rms_prices_fresh",
                        "stale_for_s": (now - self.stale_since).total_seconds(),
                    },
                )
            self.stale_since = None
            return []
        if self.stale_since is not None:
            return []  # one notice per episode
        self.stale_since = now
        held = [
            r
            for r in stale
            if level_of(r.used_pct, settings.mtm_alert_percent) > r.alert_level
            or (settings.mtm_auto_squareoff and r.squareoff_mode)
        ]
        oldest = max((r.price_age_s or 0.0) for r in stale)
        msg = (
            f"prices are stale ({len(stale)} client(s), the oldest {oldest:.0f} s old, the bound is "
            f"{settings.stale_price_seconds:g} s; source: {stale[0].source}): MTM alerts and "
            f"square-offs are held until prices are fresh"
        )
        if held:
            msg += "; held now: " + ", ".join(
                f"{r.client_id} at {r.used_pct:.0f}%" for r in held[:10] if r.used_pct is not None
            )
        detail = {
            "clients": [r.client_id for r in stale[:100]],
            "count": len(stale),
            "oldest_price_age_s": round(oldest, 1),
            "stale_price_seconds": settings.stale_price_seconds,
            "source": stale[0].source,
            "held": [_numbers(r) for r in held[:100]],
        }
        log.warning(msg, extra={"event": "rms_stale_prices", "count": len(stale), "held": len(held)})
        return [MtmEvent("stale_prices", None, msg, "warning", detail)]

    async def _squareoff(
        self,
        store: Store,
        actor: Actor,
        r: ClientRisk,
        settings: RmsSettings,
        *,
        mode: str,
        now: datetime,
        send: BackendClient | None,
        positions,
    ) -> list[MtmEvent]:
        mine = None if positions is None else [p for p in positions if p.client_id == r.client_id]
        try:
            res = await squareoff(store, actor, r, settings, mode=mode, client=send, now=now, positions=mine)
        except Exception as exc:  # tried again at the next evaluation (the day's run row was not written)
            msg = f"MTM-loss square-off of {r.client_id} failed: {exc}"
            log.exception(msg, extra={"event": "rms_mtm_squareoff_failed", "client_id": r.client_id})
            return [MtmEvent("mtm_squareoff_failed", r.client_id, msg, "error", _numbers(r))]
        self._done.add((actor.trading_date, r.client_id))
        self.squareoffs.append(res)
        if res.already:
            return []
        where = "sent to main" if send is not None else "journaled (replayed when main is back)"
        msg = (
            f"MTM-loss square-off of {r.client_id}: {len(res.cancels)} order(s) cancelled, "
            f"{len(res.legs)} position(s) squared off, {where}"
        )
        if res.left_on_main:
            msg += f"; {len(res.left_on_main)} still open on main: check them"
        log.warning(
            msg,
            extra={
                "event": "rms_mtm_squareoff",
                **_numbers(r),
                "legs": len(res.legs),
                "cancels": len(res.cancels),
                "replay_status": res.replay_status,
            },
        )
        return [
            MtmEvent(
                "mtm_squareoff",
                r.client_id,
                msg,
                "error" if res.left_on_main else "warning",
                {**_numbers(r), **res.as_dict()},
            )
        ]
