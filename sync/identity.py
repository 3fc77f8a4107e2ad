"""This console's identity, bound to its home on this machine.

Why: every client_order_id is ``{console_id}-{yymmdd}-{n:06d}`` (sync.trading.journal), the
console id read from the store.  A store copied to another home (or another machine)
keeps that id and its counter, so the two copies would issue the same ids: main
refuses the second order as "already used for a different order", or, with equal
parameters, silently takes it for the first.  So the console id counts only when the
trust anchors of this home (localstore.anchors: the OS keyring or a 0600 file in the
config dir, outside the store, named by the home's real path) name it.

The policy, in one place:

* ``ensure_enrolled(store, anchors)`` at every online login (console.service): a store
  whose id is bound here stays as it is; any other store (copied here, its home's
  anchors lost, or never enrolled: a fresh store too) gets a NEW console id, and this
  home's anchors are bound to it with a new console signing key.  Audited
  (``console_enrolled``) for a store with a past; a new console's first id is named
  by its login's audit row.  The two copies then never share an id again.
* ``check_enrolled(store)`` before anything issues or sends an id: a journal write
  (sync.trading.journal.write, allocate_ids) and a replay with entries to send
  (sync.replay).  A store that is not this console's raises ``NotEnrolled`` (exit 3,
  console.service.translate: the console's identity is not established here, and an
  online login is the cure, as for the offline login that refuses the same store).

Entries journaled before a copy keep their ids: they are the same intents in both
copies, and main takes a client_order_id it already accepted with the same parameters
as that same order (200), so replaying them from either copy places each once.

A store on a server database (no file, no home) is not bound: it is shared by design.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localstore.anchors import Anchors
    from localstore.db import Store


class NotEnrolled(Exception):
    """This store's console id is not the one this home was enrolled with: nothing may
    be journaled or replayed from it until an online login enrols it here."""

    REMEDY = (
        "log in online (`lifeboat login`) to enrol it here (it gets a new console id, so it never issues "
        "another console's order ids)"
    )

    def __init__(self, why: str, *, console_id: str, bound: str | None):
        self.why, self.console_id, self.bound = why, console_id, bound
        self.message = f"{why}; {self.REMEDY}; nothing was journaled or sent"
        super().__init__(self.message)


@dataclass(frozen=True)
class Enrolment:
    console_id: str
    previous: str | None  # the store's id before, when it had to change


def anchors_for(store: Store) -> Anchors | None:
    """This store's home's anchors (None for a server database)."""
    from localstore.anchors import Anchors

    return None if store.path is None else Anchors(store.path.parent)


def ensure_enrolled(store: Store, anchors: Anchors | None = None, *, user_id: str | None = None) -> Enrolment:
    """Bind ``store`` to this home (see the module docstring); call at an online login.
    Serialised with other processes by the store's write transaction (BEGIN IMMEDIATE),
    inside which the anchors' lock is taken: the order offline login takes them in too,
    so neither waits on the other for ever.  The anchors are written before the commit: a
    failed commit leaves them naming an id the store does not have, and the next online
    login simply enrols it again."""
    from localstore import access_reads, audit
    from localstore.db import new_console_id, rebind_console_id

    anchors = anchors or anchors_for(store)
    if anchors is None:
        return Enrolment(store.console_id, None)
    with store.write_core() as conn, anchors.locked():
        data = anchors.load()
        bound = data.get("console_id")
        current = access_reads.console_id(conn)
        if bound == current:
            if not data.get("console_key"):  # enrolled before the console had a key of its own
                anchors.enrol(current)
            new = None
        else:
            new = new_console_id()
            rebind_console_id(conn, new)
            # a store with a past (someone logged in online with it, or this home was bound to
            # another id) is audited; a new console's first id is named by its login row
            if bound is not None or access_reads.anyone_logged_in(conn):
                audit.append_core(
                    conn,
                    user_id=user_id,
                    mode="ONLINE",
                    action="console_enrolled",
                    payload={
                        "console_id": new,
                        "previous": current,
                        "bound_here": bound,
                        "why": "the store's console id was not bound to this home",
                    },
                )
            anchors.enrol(new)
    store.console_id = new or current
    _cache(store, store.console_id)
    return Enrolment(store.console_id, current if new else None)


def check_enrolled(store: Store, anchors: Anchors | None = None) -> None:
    """Raise NotEnrolled unless this home's anchors name the store's console id.  Cheap
    after the first success on a Store object (the anchors change only at an online
    login of this home, which rebinds this very store)."""
    if store.path is None or getattr(store, "_enrolled_as", None) == store.console_id:
        return
    from localstore.anchors import AnchorError

    anchors = anchors or anchors_for(store)
    if anchors is None:  # a server database has no anchors (and returned above)
        return
    try:
        bound = anchors.console_id()
    except AnchorError as exc:
        raise NotEnrolled(str(exc), console_id=store.console_id, bound=None) from None
    if bound is not None and bound != store.console_id:
        # another process of this home enrolled this very store since it was opened here
        from localstore import access_reads

        with store.read_core() as conn:
            current = access_reads.console_id(conn)
        if current == bound:
            store.console_id = current
    if bound == store.console_id:
        _cache(store, bound)
        return
    home = store.path.parent
    if bound is None:
        why = (
            f"this store (console {store.console_id}) is not enrolled on this home ({home}): it was copied "
            f"here, or this home's trust anchors ({anchors.where}) were lost"
        )
    else:
        why = (
            f"this store was enrolled as console {store.console_id} elsewhere; this home ({home}) "
            f"is enrolled as console {bound}"
        )
    raise NotEnrolled(why, console_id=store.console_id, bound=bound)


def _cache(store: Store, console_id: str) -> None:
    setattr(store, "_enrolled_as", console_id)  # noqa: B010 - a mark on this Store object only (check_enrolled)
