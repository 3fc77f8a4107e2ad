"""The risk rules as the faces ask for them: ``rms status`` (MTM against limits, the next
cut-offs and what they will do) and ``rms cutoff`` (a runbook's manual cut-off).  The rules
themselves live in sync.rms; they also run by themselves in the agent and the console."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from console.exitcodes import ExitCode
from console.service.errors import Refused, ServiceError
from console.service.results import sends
from contract import clock

if TYPE_CHECKING:
    from console.service.core import Service
    from sync.rms.settings import RmsSettings

log = logging.getLogger("lifeboat.service")


class RmsSettingsProblem(ServiceError):
    """A bad [rms] setting: the rules must never run half-configured (exit 2)."""

    exit_code = ExitCode.USAGE
    code = "rms_config"


def settings(svc: Service) -> RmsSettings:
    from console.rms_config import RmsConfigError, load

    try:
        return load(svc.data_dir)
    except RmsConfigError as exc:
        raise RmsSettingsProblem(str(exc)) from None


def check_cutoff(svc: Service, ticket: Any, *, now: datetime | None = None) -> None:
    """After a segment's intraday cut-off, a MIS order is refused unless it only reduces the
    client's position (the local book's net): the cut-off squares MIS positions off, a new one
    would only be squared off again (or be left open past the close)."""
    from localstore import rms_store
    from sync.rms import cutoff as rule

    if str(ticket.product).upper() != "MIS":
        return
    conf = settings(svc)
    segment = str(ticket.exchange).upper()
    if segment not in conf.intraday_cutoff:
        return
    now = now or clock.utcnow()
    day = rule.local_time(conf, now).date()
    when = rule.cutoff_at(conf, segment, day)
    if now < when:
        return
    net = rms_store.net_quantity(svc.store, ticket.client_id, segment, ticket.symbol.upper(), "MIS")
    side = str(getattr(ticket.side, "value", ticket.side))
    if (side == "SELL" and 0 < ticket.quantity <= net) or (side == "BUY" and 0 < ticket.quantity <= -net):
        return  # an exit: allowed
    raise Refused(
        f"new MIS orders on {segment} are refused after the intraday cut-off "
        f"({rule.local_time(conf, when):%H:%M} {conf.timezone}); only an exit of the client's MIS "
        f"position (net {net:+d}) is allowed: use NRML/CNC or square off",
        "intraday_cutoff",
    )


def protect_market(svc: Service, ticket: Any) -> Any:
    """A MARKET order about to be journaled (main down), as the LIMIT it is journaled as: the
    protection price of ``[rms] squareoff_protection`` (contract.protection) from the local
    book's last price and band.  It will be sent later, at a market nobody has seen: a bare
    market order could fill anywhere.  Any other order comes back unchanged."""
    from dataclasses import replace

    from contract.enums import OrderType
    from contract.protection import protected_price
    from localstore import rms_store

    if getattr(ticket.order_type, "value", ticket.order_type) != OrderType.MARKET.value:
        return ticket
    conf = settings(svc)
    inst = rms_store.instrument_prices(svc.store, str(ticket.exchange).upper(), ticket.symbol.upper())
    if inst is None:  # an unknown instrument: the desk refuses it with its own words
        return ticket
    side = str(getattr(ticket.side, "value", ticket.side))
    rule = conf.squareoff_protection if conf.squareoff_protection != "market" else "band_edge"
    price = protected_price(
        side,
        inst.last_price,
        tick=inst.tick_size,
        lower_band=inst.lower_band,
        upper_band=inst.upper_band,
        rule=rule,
        pct=conf.protection_percent,
    )
    return replace(ticket, order_type=OrderType.LIMIT, price=price)


@dataclass
class CutoffOutcome:
    """What ``rms cutoff`` did, segment by segment; legs and cancels listed the way
    ``squareoff --json`` lists them, each leg with its product."""

    mode: str
    user: str
    dry_run: bool
    segments: list[dict] = field(default_factory=list)
    journal_seqs: list[int] = field(default_factory=list)

    @property
    def legs(self) -> list[dict]:
        return [leg for s in self.segments for leg in s["legs"]]

    @property
    def cancels(self) -> list[dict]:
        return [c for s in self.segments for c in s["cancels"]]

    @property
    def exit_code(self) -> int:
        outcomes = {x.get("outcome") for x in self.legs + self.cancels}
        if "rejected" in outcomes:
            return int(ExitCode.REJECTED)
        if outcomes & {"conflict", "held"} or any(s.get("left_on_main") for s in self.segments):
            return int(ExitCode.HELD)
        if any(s.get("replay_status") not in (None, "done") for s in self.segments):
            return int(ExitCode.UNAVAILABLE) if sends(self.mode) and outcomes & {"journaled"} else 0
        return int(ExitCode.OK)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": "rms_cutoff",
            "mode": self.mode,
            "user": self.user,
            "dry_run": self.dry_run,
            "segments": self.segments,
            "legs": self.legs,
            "cancels": self.cancels,
            "ok": self.exit_code == 0,
        }


async def cutoff(
    svc: Service, *, segment: str | None = None, dry_run: bool = False, password: str | None = None
) -> CutoffOutcome:
    """The intraday cut-off now, for one segment or all of them: pending MIS orders cancelled,
    MIS positions squared off (ONLINE: sent at once through the journal; otherwise journaled
    for the replay).  A segment whose cut-off already ran today says so and does nothing."""
    from backend_client import errors as be
    from console.service import trading
    from sync.rms import cutoff as rule
    from sync.rms.settings import SEGMENTS

    conf = settings(svc)
    if segment is not None and segment.upper() not in SEGMENTS:
        raise Refused(f"no segment {segment!r} (allowed: {', '.join(SEGMENTS)})", "unknown_segment")
    segments = [segment.upper()] if segment else list(SEGMENTS)
    decision = await svc.decide_mode()
    mode = decision.mode
    outcome = CutoffOutcome(mode, svc.current_user() or "", dry_run)
    try:
        if decision.sends:
            async with svc.session_client(password) as c:
                actor = await trading._actor(svc, mode, password)
                for seg in segments:
                    if dry_run:
                        plan = await asyncio.to_thread(rule.dry_run, svc.store, actor, seg, conf)
                        outcome.segments.append(plan.as_dict())
                        continue
                    res = await rule.run(svc.store, actor, seg, conf, mode=mode, client=c)
                    outcome.segments.append(res.as_dict())
                    outcome.journal_seqs += res.journal_seqs
        else:
            actor = await trading._actor(svc, mode, password)
            for seg in segments:
                if dry_run:
                    plan = await asyncio.to_thread(rule.dry_run, svc.store, actor, seg, conf)
                    outcome.segments.append(plan.as_dict())
                    continue
                res = await rule.run(svc.store, actor, seg, conf, mode=mode, client=None)
                outcome.segments.append(res.as_dict())
                outcome.journal_seqs += res.journal_seqs
    except ServiceError:
        raise
    except Exception as exc:
        from console.service.errors import inside

        if decision.sends and isinstance(exc, (be.Unavailable, be.ProtocolError)):
            kind = exc.kind if isinstance(exc, be.Unavailable) else "protocol"
            for hook in svc.request_error_hooks:
                hook(kind, exc.message)
        problem = inside(exc)
        if problem is None:
            raise
        raise problem from exc
    outcome.user = actor.user_id
    log.info(
        "rms cutoff",
        extra={
            "event": "rms_cutoff_manual",
            "segments": ",".join(segments),
            "legs": len(outcome.legs),
            "cancels": len(outcome.cancels),
            "dry_run": dry_run,
        },
    )
    return outcome


async def status(svc: Service, *, now: datetime | None = None) -> dict[str, Any]:
    """Per client: MTM, limit, % of it used, mode (normal, or square-off after a breach), and
    where the MTM came from (``source``: main's positions when ONLINE, else the local book)
    with the age of its prices; per segment: the next intraday cut-off and what it would do
    now (a dry run of the local book)."""
    from localstore import rms_store
    from sync.rms import cutoff as rule
    from sync.rms import mtm

    conf = settings(svc)
    now = now or clock.utcnow()
    local_day = rule.local_time(conf, now).date()
    positions, why_local = await _main_positions(svc)
    runs = {r["scope"]: r for r in rms_store.runs(svc.store, local_day) if r["rule"] == rule.RULE}
    segments = []
    for u in rule.upcoming(conf, local_day, now):
        done = runs.get(u.segment)
        counts = rule.local_counts(svc.store, u.segment)
        segments.append(
            {
                "segment": u.segment,
                "cutoff": rule.local_time(conf, u.cutoff).strftime("%H:%M"),
                "cutoff_at": u.cutoff.isoformat(),
                "seconds_left": round(u.seconds_left, 1),
                "done_at": done["at"].isoformat() if done else None,
                "will": None
                if done
                else {"cancel_mis_orders": counts["orders"], "squareoff_mis_positions": counts["positions"]},
            }
        )
    clients = mtm.client_risk(svc.store, conf, now=now, main_positions=positions, fetched_at=now)
    return {
        "trading_date": local_day.isoformat(),
        "now": now.isoformat(),
        "timezone": conf.timezone,
        "settings": conf.as_dict(),
        "cutoffs": segments,
        "clients": [c.as_dict() for c in clients],
        "mtm_source": mtm.SOURCE_MAIN if positions is not None else mtm.SOURCE_LOCAL,
        "mtm_source_reason": why_local,
    }


async def _main_positions(svc: Service) -> tuple[list | None, str | None]:
    """Main's positions (marked at main's current price) when the console is ONLINE, else
    None and why the local book is used instead (in the console: on the live session's loop,
    with its one client)."""
    from backend_client import errors as be
    from console.service.errors import ServiceError

    try:
        decision = await svc.decide_mode()
        if not decision.sends:
            return None, f"mode {decision.mode}: the local book"
        async with svc.session_client() as c:
            return await c.positions(), None
    except (be.BackendError, ServiceError) as exc:
        reason = getattr(exc, "message", None) or str(exc)
        log.info("rms status: MTM from the local book (%s)", reason, extra={"event": "rms_status_local"})
        return None, f"main's positions unavailable ({reason}): the local book"
