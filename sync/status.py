"""The store's side of `lifeboat status` and of the CLI's one-shot mode decision.

Why it starts fast: `status` is what support staff and scripts run first during an
outage (bench P7).  Its reads are plain SQL in localstore/status_reads.py (neither the
ORM, the models nor the pydantic wire schema is imported); this module shapes them.
The journal states come from localstore.journal_states (one definition).
"""

from __future__ import annotations

from localstore import status_reads

# re-exported: the journal states status counts by
from localstore.journal_states import FINAL_STATES as FINAL_STATES
from localstore.journal_states import HELD_STATES as HELD_STATES
from localstore.journal_states import UNFINISHED_STATES as UNFINISHED_STATES


def anchors_state(store, conn) -> dict:
    """Where this console's trust anchors are kept (the OS keyring, or the 0600 file when
    the machine has none) and whether this store is the console enrolled on this home:
    ``{"kind", "where", "enrolled", "enrolled_as"?, "problem"?}`` (enrolled_as: the
    console id this home's anchors name, when it is not the store's).  A store nobody
    logged in online with cannot be enrolled (enrolment is part of that login): said
    without asking the keyring (about 75 ms to import; bench P7)."""
    if not status_reads.any_credential(conn):
        return {
            "kind": "none",
            "enrolled": False,
            "where": "none kept yet (an online login enrols this console and keeps them)",
        }
    from localstore.anchors import AnchorError
    from sync.identity import NotEnrolled, anchors_for, check_enrolled

    anchors = anchors_for(store)
    if anchors is None:
        return {
            "kind": "none",
            "where": "not kept: a server database is not bound to one home",
            "enrolled": False,
        }
    try:
        out = {"kind": anchors.kind, "where": anchors.where}
    except AnchorError as exc:
        return {"kind": "unknown", "where": "unknown", "enrolled": False, "problem": str(exc)}
    try:
        check_enrolled(store, anchors)
        return {**out, "enrolled": True}
    except NotEnrolled as exc:
        return present({**out, "enrolled": False, "enrolled_as": exc.bound, "problem": exc.why})


def mode_inputs(conn) -> tuple[str | None, int]:
    """(a supervisor's forced mode or None, how many journal entries are unfinished)."""
    return status_reads.mode_inputs(conn)


def store_status(conn, *, unacknowledged_limit: int = 20) -> dict:
    """Policy, last BOD, mirror freshness and journal depth, as plain values."""
    h = status_reads.heads(conn)
    unacked = [
        present(
            seq=r.seq,
            kind=r.kind,
            client_order_id=r.client_order_id,
            client_id=r.client_id,
            symbol=r.symbol,
            state=r.state,
            created_at=r.created_at.isoformat(),
        )
        for r in status_reads.unacknowledged(conn, unacknowledged_limit)
    ]
    return {
        "trading_date": _date_text(h.trading_date),
        "bod_at": h.bod_at,
        "bod_seq": h.bod_seq,
        "last_event_seq": h.last_event_seq,
        "last_event_at": h.last_event_at,
        "last_applied_at": h.last_applied_at,
        "allow_new_exposure": bool(h.allow_new_exposure),
        "killswitch": bool(h.killswitch),
        "policy_updated_by": h.updated_by,
        "forced_at": h.forced_at,
        "forced_by": h.forced_by,
        "depth": int(h.depth),
        "held": int(h.held),
        "unacknowledged": int(h.unacknowledged),
        "unacknowledged_entries": unacked,
        "recorded_mode": h.recorded_mode,
        "mode_since": h.mode_since,
        "mode_reason": h.mode_reason,
        "lease_holder": h.lease_holder,
        "lease_acquired_at": h.lease_acquired_at,
        "lease_expires_at": h.lease_expires_at,
        "last_report_at": h.last_report_at,
        "last_verdict": _last_verdict(conn) if h.last_report_at else None,
    }


def _last_verdict(conn) -> str | None:
    """The verdict of the newest reconciliation report (what `sync report` exits by)."""
    import json

    from sync.verdict import verdict

    raw = status_reads.last_report_json(conn)
    try:
        report = json.loads(raw) if raw else None
    except ValueError:
        return None
    return (report.get("verdict") or verdict(report)) if isinstance(report, dict) else None


def replay_state(st: dict, now, *, main_reachable: bool) -> dict:
    """What the replay is doing, from the store alone: running (a live lease), waiting
    (unreplayed entries; main down, or no runtime has started the replay yet), held
    (entries wait for a supervisor), or idle."""
    held = st["held"]
    unfinished = st["depth"] - held
    if st["lease_holder"] and st["lease_expires_at"] and st["lease_expires_at"] > now:
        state = "running"
    elif unfinished:
        state = "waiting for main" if not main_reachable else "pending"
    elif held:
        state = "held for a person"
    else:
        state = "idle"
    return present(
        {
            "state": state,
            "unreplayed": unfinished,
            "held": held,
            "holder": st["lease_holder"] if state == "running" else None,
            "since": st["lease_acquired_at"].isoformat()
            if state == "running" and st["lease_acquired_at"]
            else None,
            "last_report_at": st["last_report_at"].isoformat() if st["last_report_at"] else None,
            "last_verdict": st.get("last_verdict"),
        }
    )


def backup_readiness(conn, now, *, store, user_id: str | None = None) -> dict:
    """Could a backup-mode action be accepted on this console now, as far as offline login
    goes: a user (``user_id``, else any user with offline material here) with a local
    verifier and a stored grant that passes the very checks offline login makes
    (sync.offline.usable_grant: clock not set back, this console enrolled here, the
    signature with the key pinned in ``store``'s trust anchors, user, expiry), and who is
    neither a viewer nor locked out of offline login (localstore.credentials).  The password is not
    checked: only the person knows it.  Returns
    ``{"users": [{"user_id", "role", "grant_valid_until"}, ...]}`` for those who could
    act, and ``"problems"``: one sentence per user who could not (or why nobody is here)."""
    from localstore import credentials

    rows = [r for r in status_reads.credentials(conn) if user_id is None or r.user_id == user_id]
    if not rows:
        who = f"{user_id} has never" if user_id else "nobody has ever"
        return {
            "users": [],
            "problems": [
                f"{who} logged in online on this console (an online login is needed before an outage)"
            ],
        }
    from sync import offline  # the signature check (cryptography): only when there is a grant to check

    pinned = offline.trusted_grant_keys(store)  # the anchors (keyring): only when there is a grant to check
    anchors = offline.throttle_anchors(store)  # main's time at the last online login (clock), the lockout
    watermark = credentials.watermark(conn, anchors)
    rolled_back = credentials.clock_rolled_back(conn, now, anchors)
    users, problems = [], []
    for r in rows:
        if not r.verifier:
            problems.append(f"{r.user_id} has never logged in online on this console")
            continue
        try:
            grant = offline.usable_grant(
                r.user_id,
                r.grant_json,
                r.public_key,
                pinned=pinned,
                now=now,
                watermark=watermark,
                rolled_back=rolled_back,
            )
        except offline.GrantUnusable as exc:
            why = exc.detail + (
                " (an online login enrols this console and pins the main system's keys)"
                if exc.untrusted
                else " (an online login renews it)"
                if exc.relogin
                else ""
            )
            problems.append(f"{r.user_id}: {why}" if user_id is None else why)
            continue
        if grant.role.value == "viewer":
            problems.append(f"{r.user_id} is a viewer and cannot trade")
            continue
        attempts = credentials.attempts(anchors, r.user_id)
        if attempts.locked:
            problems.append(
                f"{r.user_id} is locked for offline login after {attempts.count} wrong passwords in a "
                f"row (a supervisor's `lifeboat user release {r.user_id}`, or an online login, lifts it)"
            )
            continue
        users.append(
            {
                "user_id": r.user_id,
                "role": grant.role.value,
                "grant_valid_until": grant.valid_until.isoformat(),
            }
        )
    return {"users": users, "problems": problems}


def present(d: dict | None = None, *, keep: tuple[str, ...] = (), **kw) -> dict:
    """``d`` (and ``kw``) without the keys whose value is not known (None), but for those
    in ``keep``: status never prints a null where a word belongs; an absent key means
    never, none or not known."""
    return {k: v for k, v in {**(d or {}), **kw}.items() if v is not None or k in keep}


def _date_text(value) -> str | None:
    """A DATE column as ISO text (SQLite gives the stored text, a server a date)."""
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()
