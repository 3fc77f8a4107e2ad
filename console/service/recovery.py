"""Status and recovery: what support looks at first (status), the runtime with no
screen (agent), replay and reconciliation, and the entries held for a person.

Functions of the Service (console.service.core), which exposes them as its methods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backend_client import errors as be
from console.service import trading
from console.service.errors import Refused, translate
from console.service.results import ReplayOutcome
from contract import clock
from localstore.paths import privacy_warnings

if TYPE_CHECKING:
    from console.service.core import Service
    from sync.monitoring import MonitorServer
    from sync.runtime import Runtime

log = logging.getLogger("lifeboat.service")


async def status(svc: Service, *, now: datetime | None = None) -> dict:
    """What support staff look at first.  Probes the main system once (about a second at most).

    The mode is UNAVAILABLE (exit 5, with a ``reason``) where the one-shot decision is
    BACKUP but no backup action could be accepted here: no user with a verifier and a
    grant valid by the clock (the checks of offline login), or no start-of-day book.
    A key whose value is not known is left out (never a null where a word belongs):
    no ``last_bod`` means never taken, no ``recorded_mode`` means no runtime recorded
    one, no ``mode_since`` means the one-shot probe decided it and nothing says since when."""
    from sync import status

    decision = await svc.decide_mode()
    probe = decision.probe
    backend = {"url": svc.backend_url, "reachable": probe.ok}
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
    with svc.store.read_core() as conn:  # Core reads: no ORM, no models (bench P7)
        st = status.store_status(conn, unacknowledged_limit=20)
        anchors = status.anchors_state(svc.store, conn)
        mode, reason, backup = decision.mode, None, None
        if mode == "BACKUP":  # would a backup action be accepted?  (cryptography only on this path)
            ready = status.backup_readiness(conn, now, store=svc.store, user_id=svc.user)
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
                    else decision.sites.reason
                    if decision.sites is not None
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
            "sites": None if decision.sites is None else decision.sites.as_dict(),
            "backup": backup,
            "console_id": svc.store.console_id,
            "store": str(svc.store.path),
            "privacy_warnings": privacy_warnings(svc.data_dir),  # what others could read in the data dir
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


async def run_agent(
    svc: Service,
    password: str | None = None,
    *,
    ready: Callable[[Runtime], None] | None = None,
    monitor: MonitorServer | None = None,
) -> None:
    """The runtime with no screen, until cancelled or the session is refused."""
    from console.live import LiveSession
    from console.shutdown import AgentPresence

    try:
        # while it runs, a console quitting with unsent entries can say the agent sends them;
        # the same live session as the TUI's (one loop, one client), on this command's loop
        with AgentPresence(svc.data_dir):
            await LiveSession(svc).run_forever(password, ready=ready, monitor=monitor)
    except be.BackendError as exc:  # translated here, as before the boundary (reason_of's causes)
        raise translate(exc) from exc


async def replay(svc: Service, password: str | None = None, *, wait_s: float = 0.0) -> ReplayOutcome:
    """Replay the journal to main now (one pass holding the store's replay lease), then
    reconcile.  Returns the ReplayResult and the report (None: no reconciliation ran);
    "busy" (another replayer) and "stopped" (main went away) are in replay.status."""
    from sync.reconcile import reconcile
    from sync.replay import Replayer

    try:
        async with svc.session_client(password) as c:
            result = await Replayer(svc.store, c).run(wait_s=wait_s)
            report = None
            if result.status not in ("busy", "refused"):  # refused: nothing was sent (audit chain)
                try:
                    report = await reconcile(svc.store, c, result, mode="RECOVERING")
                except (be.Unavailable, be.ProtocolError) as exc:
                    if result.status == "done":
                        result.status, result.stopped_reason = "stopped", f"reconciliation: {exc.message}"
    except be.BackendError as exc:  # translated here, as before the boundary (reason_of's causes)
        raise translate(exc) from exc
    log.info("replay", extra={"event": "replay", "status": result.status, "processed": len(result.outcomes)})
    return ReplayOutcome(result, report)


def last_report(svc: Service) -> dict | None:
    from sync.reconcile import last_report

    return last_report(svc.store)


def held_entries(svc: Service) -> list[dict]:
    from sync.trading.held import held_entries

    return held_entries(svc.store)


async def decide_held(svc: Service, seq: int, password: str | None, *, release: bool) -> dict[str, Any]:
    """Supervisor: send a held entry on the next replay (``release``), or never send it
    (moot, "discarded by <user>"); audited."""
    from sync.trading import held

    actor = await trading._supervisor(svc, password, "decide held journal entries", "LOCAL")
    fn = held.release if release else held.discard
    try:
        row = await asyncio.to_thread(fn, svc.store, seq, user_id=actor.user_id, mode="LOCAL")
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
