"""Reconciliation after a replay: does main now hold what the journal meant?

Why it exists: a person must be able to see, line by line, that the two sides agree
after an outage.  The report answers three questions, in this order:

1. What happened to every journal entry (applied, moot, rejected, conflict, held,
   and any still pending/sent), one line each with its reason.
2. Does main match what the journal expected?  An applied PLACE whose order is
   missing on main, a square-off that did not end flat, a cancel whose order is
   still open, a modify main does not show.
3. What moved on main while this console could not see it?  The local book as it
   stood before reconciliation is compared with main for every position and open
   order the journal did not touch (fills, trades placed elsewhere).  Such a change
   is a mismatch (a finding for a person) when it concerns a client this console
   squared off: a position open on main again, or an open order that can reopen one.
   Every other change is listed under ``moved_on_main`` for information: main keeps
   trading through other channels during an outage, and calling each of those a
   mismatch would make exit 6 routine and so meaningless.

Then the local mirror is replaced by a fresh snapshot of main (one transaction, as at
BOD, or through the runtime so its stream resumes from the snapshot), so afterwards
the local view equals main; the report says whether it does.  The report is stored
as JSON in ``reconciliation_report``; ``lifeboat sync report`` shows the last one.

Every mismatch carries a ``next_step`` for the person who reads it (a square-off
whose position is not flat on main: square off again).  The report carries its
``verdict`` and ``headline`` (sync/verdict.py): the headline counts what the report
lists, and says "equals" only when it lists no mismatch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import date

from backend_client.client import BackendClient
from contract import clock, wire
from contract.enums import value_of
from localstore import journal_store, mirror_store, report_store
from localstore.db import Store
from localstore.journal_states import JournalState
from sync.bod import replace_book
from sync.trading.held import DISCARDED_PREFIX
from sync.verdict import headline, verdict

_OUTSTANDING = (
    JournalState.PENDING.value,
    JournalState.SENT.value,
    JournalState.HELD.value,
    JournalState.CONFLICT.value,
)
STATES = ("applied", "moot", "rejected", "conflict", "held", "pending", "sent")
FOR_A_PERSON = ("held", "conflict")


def _key(x) -> tuple[str, str, str, str]:
    return (x.client_id, str(value_of(x.exchange)), x.symbol, str(value_of(x.product)))


# --------------------------------------------------------------------------- local reads (blocking)


def local_book(store: Store) -> dict:
    """The local mirror: net quantity per position, open orders, trade ids."""
    positions, open_orders, trades = mirror_store.book_for_reconciliation(store)
    return {
        "positions": {_key(r): r.net_quantity for r in positions},
        "open_orders": {
            r.order_id: (r.client_order_id, r.client_id, r.symbol, value_of(r.status)) for r in open_orders
        },
        "trades": trades,
    }


def report_entries(store: Store, trading_date: date) -> list[dict]:
    """Entries of main's trading day, and every older one still waiting for something."""
    out = []
    for r in journal_store.for_report(store, trading_date, _OUTSTANDING):
        out.append(
            {
                "seq": r["seq"],
                "kind": value_of(r["kind"]),
                "client_order_id": r["client_order_id"],
                "client_id": r["client_id"],
                "exchange": value_of(r["exchange"]),
                "symbol": r["symbol"],
                "product": value_of(r["product"]),
                "state": value_of(r["state"]),
                "reason": r["state_reason"],
                "main_order_id": r["main_order_id"],
                "target_order_id": r["target_order_id"],
                "target_client_order_id": r["target_client_order_id"],
                "user_id": r["user_id"],
                "created_at": r["created_at"].isoformat(),
                "payload": json.loads(r["payload"] or "{}"),
            }
        )
    return out


def save_report(store: Store, report: dict) -> int:
    return report_store.save(store, clock.utcnow(), json.dumps(report, default=str))


def last_report(store: Store) -> dict | None:
    found = report_store.last(store)
    if found is None:
        return None
    report_id, text = found
    report = json.loads(text)
    report["id"] = report_id
    return report


# --------------------------------------------------------------------------- comparison (pure)


def _discarded(e: dict) -> bool:
    """A supervisor discarded it: moot, and it never reached main (nothing to judge there)."""
    return e["state"] == "moot" and (e.get("reason") or "").startswith(DISCARDED_PREFIX)


def journal_mismatches(
    entries: list[dict], main_positions: dict, main_orders: list[wire.Order], scope: set[str] | None
) -> list[dict]:
    """Where main does not hold what an entry's final state says it should."""
    by_coid = {o.client_order_id: o for o in main_orders}
    by_id = {o.order_id: o for o in main_orders}
    slices_of: dict[str, list[wire.Order]] = {}  # a square-off's slices are "{client_order_id}-{k}"
    for order in main_orders:
        parent, _, k = order.client_order_id.rpartition("-")
        if k.isdigit():
            slices_of.setdefault(parent, []).append(order)
    out: list[dict] = []
    last_touch: dict[tuple, dict] = {}
    for e in entries:
        if e["kind"] in ("PLACE", "SQUARE_OFF") and e["state"] in ("applied", "moot") and not _discarded(e):
            last_touch[(e["client_id"], e["exchange"], e["symbol"], e["product"])] = e
    for e in entries:
        if scope is not None and e["client_id"] not in scope:
            continue
        base = {
            "seq": e["seq"],
            "client_order_id": e["client_order_id"],
            "client_id": e["client_id"],
            "exchange": e["exchange"],
            "symbol": e["symbol"],
            "product": e["product"],
        }
        kind, state = e["kind"], e["state"]
        if kind == "PLACE" and state == "applied":
            o = by_coid.get(e["client_order_id"])
            if o is None:
                out.append(
                    {
                        **base,
                        "kind": "order_missing_on_main",
                        "expected": "an order with this id",
                        "main": None,
                        "detail": "the journal says main accepted it; main has no such order",
                        "next_step": "ask main's desk about it; place it again if it is still wanted",
                    }
                )
            elif e["main_order_id"] and o.order_id != e["main_order_id"]:
                out.append(
                    {
                        **base,
                        "kind": "order_id_differs",
                        "expected": e["main_order_id"],
                        "main": o.order_id,
                        "detail": "main's order for this id is not the one recorded",
                        "next_step": f"check orders {e['main_order_id']} and {o.order_id} on main",
                    }
                )
        elif kind == "SQUARE_OFF" and state in ("applied", "moot") and not _discarded(e):
            key = (e["client_id"], e["exchange"], e["symbol"], e["product"])
            if last_touch.get(key) is not e:
                continue  # a later entry changed this position on purpose
            net = main_positions.get(key, 0)
            slices = slices_of.get(e["client_order_id"], [])
            if net != 0:
                working = [o.order_id for o in slices if o.status in wire.OPEN_STATUSES]
                why = (
                    f"{len(working)} of its orders still working on main ({', '.join(working)})"
                    if working
                    else "it moved on main after the square-off"
                )
                out.append(
                    {
                        **base,
                        "kind": "not_flat",
                        "expected": 0,
                        "main": net,
                        "detail": f"the square-off is {state} but main's position is {net:+d}: {why}",
                        "next_step": (
                            f"wait for {', '.join(working)} to fill, or cancel and square off again"
                            if working
                            else _squareoff_again(e["client_id"], e["symbol"])
                        ),
                    }
                )
            if len({o.client_order_id for o in slices}) != len(slices):
                out.append(
                    {
                        **base,
                        "kind": "duplicate_order",
                        "expected": "one order per slice id",
                        "main": len(slices),
                        "detail": "a slice id appears twice on main",
                        "next_step": f"check {e['client_id']} {e['symbol']} on main and undo the extra order",
                    }
                )
        elif kind == "CANCEL" and state == "applied":
            o = by_id.get(e["main_order_id"] or "")
            if o is not None and o.status in wire.OPEN_STATUSES:
                out.append(
                    {
                        **base,
                        "kind": "order_still_open",
                        "expected": "CANCELLED",
                        "main": o.status.value,
                        "detail": f"order {o.order_id} is still open on main",
                        "next_step": f"cancel it again: lifeboat order cancel --order-id {o.order_id}",
                    }
                )
        elif kind == "MODIFY" and state == "applied":
            o = by_id.get(e["main_order_id"] or "")
            want = {
                k: v
                for k, v in e["payload"].items()
                if k in ("quantity", "price", "trigger_price") and v is not None
            }
            if o is not None and o.status in wire.OPEN_STATUSES:
                diff = {
                    k: (v, str(getattr(o, k)))
                    for k, v in want.items()
                    if str(getattr(o, k)) != str(v) and not _same_number(getattr(o, k), v)
                }
                if diff:
                    out.append(
                        {
                            **base,
                            "kind": "modify_not_on_main",
                            "expected": {k: a for k, (a, _) in diff.items()},
                            "main": {k: b for k, (_, b) in diff.items()},
                            "detail": f"order {o.order_id} does not show the modification",
                            "next_step": f"modify order {o.order_id} again if the change is still wanted",
                        }
                    )
    return out


def _squareoff_again(client_id: str, symbol: str | None) -> str:
    return f"square off again: lifeboat squareoff --client {client_id}" + (
        f" --symbol {symbol}" if symbol else ""
    )


def _same_number(a, b) -> bool:
    try:
        from decimal import Decimal

        return Decimal(str(a)) == Decimal(str(b))
    except Exception:  # noqa: BLE001 - not numbers: they differ
        return False


def moved_on_main(
    local: dict, main_positions: dict, main_open: dict, entries: list[dict], scope: set[str] | None
) -> list[dict]:
    """Positions and open orders the journal did not touch that differ between the local
    book (before reconciliation) and main: what happened while the console was blind."""
    touched = {
        (e["client_id"], e["exchange"], e["symbol"], e["product"])
        for e in entries
        if e["kind"] in ("PLACE", "SQUARE_OFF") and not _discarded(e)
    }
    targeted = {
        e["main_order_id"] for e in entries if e["kind"] in ("CANCEL", "MODIFY") and e["main_order_id"]
    }
    targeted |= {e["target_order_id"] for e in entries if e["target_order_id"]}
    ours = {e["client_order_id"] for e in entries}
    squared_off = {
        e["client_id"]
        for e in entries
        if e["kind"] == "SQUARE_OFF" and e["state"] in ("applied", "moot") and not _discarded(e)
    }
    out: list[dict] = []
    for key in sorted(set(local["positions"]) | set(main_positions)):
        if key in touched or (scope is not None and key[0] not in scope):
            continue
        lq, mq = local["positions"].get(key, 0), main_positions.get(key, 0)
        if lq != mq:
            finding = mq != 0 and key[0] in squared_off
            step = (
                f"if {key[0]} should be flat, " + _squareoff_again(key[0], key[2])
                if finding
                else "none needed: the local book now shows main's position"
            )
            out.append(
                {
                    "kind": "position_differs",
                    "client_id": key[0],
                    "exchange": key[1],
                    "symbol": key[2],
                    "product": key[3],
                    "local": lq,
                    "main": mq,
                    "finding": finding,
                    "detail": "moved on main while this console could not see it",
                    "next_step": step,
                }
            )
    for oid, (coid, client_id, symbol, status) in sorted(local["open_orders"].items()):
        if oid in targeted or oid in main_open or (scope is not None and client_id not in scope):
            continue
        out.append(
            {
                "kind": "order_closed_on_main",
                "order_id": oid,
                "client_order_id": coid,
                "client_id": client_id,
                "symbol": symbol,
                "local": status,
                "main": "not open",
                "finding": False,
                "detail": "open in the local book, no longer open on main (filled or cancelled meanwhile)",
                "next_step": "none needed: the local book now shows main's orders",
            }
        )
    for oid, o in sorted(main_open.items()):
        if (
            oid in local["open_orders"]
            or o.client_order_id in ours
            or o.client_order_id.rsplit("-", 1)[0] in ours
            or (scope is not None and o.client_id not in scope)
        ):
            continue
        finding = o.client_id in squared_off
        out.append(
            {
                "kind": "order_only_on_main",
                "order_id": oid,
                "client_order_id": o.client_order_id,
                "client_id": o.client_id,
                "symbol": o.symbol,
                "local": None,
                "main": o.status.value,
                "finding": finding,
                "detail": "open on main, unknown to the local book (placed elsewhere)",
                "next_step": (
                    f"{o.client_id} was squared off: cancel it or square off again once it fills"
                    if finding
                    else "none needed: the local book now shows main's orders"
                ),
            }
        )
    return out


_REFRESH = "take main's book again: lifeboat sync bod"


def mirror_mismatches(local: dict, snap: wire.BodSnapshot) -> list[dict]:
    """After the refresh: the local book against the snapshot it was built from."""
    out = []
    main_pos = {_key(p): p.net_quantity for p in snap.positions}
    if local["positions"] != main_pos:
        for key in sorted(set(local["positions"]) | set(main_pos)):
            if local["positions"].get(key) != main_pos.get(key):
                out.append(
                    {
                        "kind": "mirror_position",
                        "client_id": key[0],
                        "symbol": key[2],
                        "local": local["positions"].get(key),
                        "main": main_pos.get(key),
                        "detail": "the local book still differs from main after the refresh",
                        "next_step": _REFRESH,
                    }
                )
    main_open = {o.order_id for o in snap.open_orders}
    if set(local["open_orders"]) != main_open:
        out.append(
            {
                "kind": "mirror_orders",
                "local": sorted(set(local["open_orders"]) - main_open),
                "main": sorted(main_open - set(local["open_orders"])),
                "detail": "open orders differ from main after the refresh",
                "next_step": _REFRESH,
            }
        )
    if local["trades"] != {t.trade_id for t in snap.trades}:
        out.append(
            {
                "kind": "mirror_trades",
                "detail": "trades differ from main after the refresh",
                "local": len(local["trades"]),
                "main": len(snap.trades),
                "next_step": _REFRESH,
            }
        )
    return out


def counts_of(entries: list[dict]) -> dict:
    counts = dict.fromkeys(STATES, 0)
    for e in entries:
        counts[e["state"]] = counts.get(e["state"], 0) + 1
    return counts


# --------------------------------------------------------------------------- the whole thing


async def reconcile(
    store: Store,
    client: BackendClient,
    replay_result=None,
    *,
    apply_snapshot: Callable[[wire.BodSnapshot], Awaitable[None]] | None = None,
    mode: str = "RECOVERING",
    offload: bool = False,
) -> dict:
    """Compare, refresh the mirror from main, compare again, store and return the report.
    Raises backend_client errors when main cannot be read (nothing is stored then)."""

    async def db(fn, *a, **kw):
        return await asyncio.to_thread(fn, *a, **kw) if offload else fn(*a, **kw)

    before = await db(local_book, store)
    snap = await client.bod()
    main_orders = await client.orders()
    if apply_snapshot is not None:
        await apply_snapshot(snap)
    else:
        await db(replace_book, store, snap, mode=mode, reason="reconciliation after replay")
    after = await db(local_book, store)
    entries = await db(report_entries, store, snap.trading_date)
    scope = set(snap.user.client_ids)
    main_positions = {_key(p): p.net_quantity for p in snap.positions}
    main_open = {o.order_id: o for o in main_orders if o.status in wire.OPEN_STATUSES}
    expected = journal_mismatches(entries, main_positions, main_orders, scope)
    changed = moved_on_main(before, main_positions, main_open, entries, scope)
    moved = [m for m in changed if m["finding"]]
    mirror = mirror_mismatches(after, snap)
    counts = counts_of(entries)
    for e in entries:
        e.pop("payload", None)
    report = {
        "created_at": clock.utcnow().isoformat(),
        "user": snap.user.user_id,
        "trading_date": snap.trading_date.isoformat(),
        "snapshot_seq": snap.seq,
        "replay": None
        if replay_result is None
        else {k: v for k, v in replay_result.as_dict().items() if k != "outcomes"},
        "counts": counts,
        "for_a_person": sum(counts[s] for s in FOR_A_PERSON),
        "entries": entries,
        "mismatches": expected + moved + mirror,
        "mismatch_counts": {
            "journal_vs_main": len(expected),
            "moved_on_main": len(moved),
            "mirror": len(mirror),
        },
        "moved_on_main": [m for m in changed if not m["finding"]],  # for information: not mismatches
        "local_equals_main": not mirror,
        "main": {
            "positions": len(snap.positions),
            "orders": len(main_orders),
            "open_orders": len(main_open),
            "trades": len(snap.trades),
        },
    }
    report["verdict"] = verdict(report)
    report["headline"] = headline(report)
    report["id"] = await db(save_report, store, report)
    return report
