"""One line for a person from an ActionResult (sent, journaled, or rejected and why), and
from a ServiceError (its neutral reason, with the console's own advice).

Why the advice is here: the service's messages name no CLI flag or command; each face
says what its user can do (the CLI in console/cli_advice.py).  On the console the
password is the one typed at login, and logging in happens on the login screen.
"""

from __future__ import annotations

from console.service import ADVICE_LOGIN, ADVICE_LOGIN_OR_PASSWORD, ADVICE_PASSWORD, ServiceError

ADVICE = {
    ADVICE_PASSWORD: "log in again with your password",
    ADVICE_LOGIN: "log in online as {user} while the main system answers",
    ADVICE_LOGIN_OR_PASSWORD: "log in online as {user} while the main system answers",
}


def said(problem: ServiceError) -> str:
    """The sentence the console shows for a service error: its reason, then the advice."""
    advice = ADVICE.get(problem.advice or "")
    if advice is None:
        return problem.message
    return f"{problem.message}: {advice.format(user=problem.advice_user or 'your user')}"


def summarize(res) -> tuple[str, bool]:
    """(text, ok).  ok is False when anything was rejected."""
    d = res.as_dict()
    mode = res.mode
    if res.action in ("squareoff", "killswitch"):
        legs = res.legs or []
        bad = [leg for leg in legs if leg.get("outcome") in ("rejected", "unknown", "not_sent")]
        what = "square-off" if res.action == "squareoff" else "kill switch"
        if res.dry_run:
            return f"{what} preview: {len(legs)} leg(s), {len(res.cancels)} order(s) to cancel", True
        verb = "journaled" if mode != "ONLINE" else "sent"
        text = f"{what} {verb} ({mode}): {len(legs)} leg(s), {len(res.cancels)} cancel(s)"
        if bad:
            text += "; not done: " + "; ".join(
                f"{leg.get('client_id')} {leg.get('symbol')}: {leg.get('reason') or leg.get('outcome')}"
                for leg in bad
            )
        return text, not bad
    o = res.order or {}
    outcome = d.get("outcome")
    label = {"order_place": "order", "order_modify": "modify", "order_cancel": "cancel"}.get(
        res.action, res.action
    )
    if outcome == "rejected":
        return (
            f"{label} REJECTED: {o.get('status_reason') or o.get('reason') or 'rejected by the main system'}",
            False,
        )
    if mode != "ONLINE":
        return (
            f"{label} JOURNALED #{o.get('seq')} ({mode}): {o.get('client_order_id')}, goes to main on recovery",
            True,
        )
    ident = o.get("order_id") or o.get("client_order_id")
    return f"{label} SENT: {ident} {o.get('status', o.get('outcome', ''))}".strip(), True
