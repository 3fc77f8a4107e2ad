"""`lifeboat user release USER` and `lifeboat user lockout [N]`: a supervisor's answer
to the offline lockout (localstore.credentials).

Why a command of its own: a dealer locked after three wrong passwords during an
outage must not wait for the main system; the supervisor at the desk releases them
with their own password, checked against this console's verifier and signed grant
(works offline, audited).  The TUI has no screen for it yet.

Exit codes: 0 done; 3 wrong password, throttled or locked, not a supervisor;
5 the password cannot be checked on this console (no offline material here).
"""

from __future__ import annotations

from console.runner import UsageProblem, emit_json, out, read_password, run
from console.service import Service


def release(g, *, user: str, as_json: bool) -> int:
    def action(svc: Service):
        if not user or len(user) > 64:
            raise UsageProblem("user release needs the USER to release (at most 64 characters)")

        async def go():
            st = await svc.user_release(user, password=read_password(g))
            if as_json:
                emit_json(st.as_dict())
            elif st.failures:
                was = "was locked" if st.was_locked else f"had {st.failures} failed attempt(s), not locked"
                out.print(
                    f"{user} released by {st.released_by} ({was}): offline login allowed again",
                    markup=False,
                )
            else:
                out.print(
                    f"{user} was not locked and had no failed attempts; nothing to release", markup=False
                )
            return 0

        return go()

    return run(g, action)


def lockout(g, *, n: int | None, as_json: bool) -> int:
    def action(svc: Service):
        async def go():
            st = (
                svc.user_lockout_show()
                if n is None
                else await svc.user_lockout_set(n, password=read_password(g))
            )
            set_by = f"; set by {st.set_by}" if st.set_by else ""
            if as_json:
                emit_json(st.as_dict())
            elif st.lock_after:
                out.print(
                    f"offline login locks a user after {st.lock_after} wrong passwords in a row{set_by}",
                    markup=False,
                )
            else:
                out.print(
                    f"offline lockout off (the growing delay still applies){set_by}",
                    markup=False,
                )
            return 0

        return go()

    return run(g, action)
