"""The journal-versus-main comparison of reconciliation (sync.reconcile.journal_mismatches), on hand-built
entries and main orders: each kind of mismatch is found, and a book that agrees yields none.  The end-to-end
reconciliation against a real mainsim is in test_replay_cli / test_replay_crash."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from contract import wire
from sync.reconcile import journal_mismatches

NOW = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
KEY = ("C001", "NSE", "INFY", "MIS")


def entry(seq, kind, coid, state="applied", main_order_id=None, payload=None, client_id="C001"):
    return {
        "seq": seq,
        "kind": kind,
        "client_order_id": coid,
        "client_id": client_id,
        "exchange": "NSE",
        "symbol": "INFY",
        "product": "MIS",
        "state": state,
        "main_order_id": main_order_id,
        "payload": payload or {},
    }


def order(order_id, coid, status="COMPLETE", quantity=10, price=None, client_id="C001"):
    return wire.Order(
        order_id=order_id,
        client_order_id=coid,
        client_id=client_id,
        exchange="NSE",
        symbol="INFY",
        side="SELL",
        quantity=quantity,
        filled_quantity=quantity if status == "COMPLETE" else 0,
        average_price=Decimal("0"),
        product="MIS",
        order_type="LIMIT" if price else "MARKET",
        price=price,
        trigger_price=None,
        validity="DAY",
        disclosed_quantity=None,
        status=status,
        placed_by="dealer1",
        created_at=NOW,
        updated_at=NOW,
    )


def kinds(found):
    return sorted((m["kind"], m["client_order_id"]) for m in found)


def test_a_book_that_agrees_has_no_mismatch():
    entries = [
        entry(1, "PLACE", "K-261130-000001", main_order_id="O1"),
        entry(2, "SQUARE_OFF", "K-261130-000002"),
        entry(3, "CANCEL", "K-261130-000003", main_order_id="O9"),
        entry(4, "MODIFY", "K-261130-000004", main_order_id="O8", payload={"quantity": 5, "price": "100.5"}),
    ]
    main = [
        order("O1", "K-261130-000001"),
        order("O2", "K-261130-000002-1"),
        order("O3", "K-261130-000002-2"),
        order("O9", "X-1", status="CANCELLED"),
        order("O8", "X-2", status="OPEN", quantity=5, price=Decimal("100.50")),
    ]
    assert journal_mismatches(entries, {KEY: 0}, main, {"C001"}) == []


def test_each_mismatch_is_found_at_its_entry():
    entries = [
        entry(1, "PLACE", "K-261130-000001", main_order_id="O1"),  # main has no such order
        entry(2, "PLACE", "K-261130-000002", main_order_id="O2"),  # main's order for it has another id
        entry(3, "SQUARE_OFF", "K-261130-000003"),  # not flat, and a slice id twice
        entry(4, "CANCEL", "K-261130-000004", main_order_id="O9"),  # still open
        entry(5, "MODIFY", "K-261130-000005", main_order_id="O8", payload={"quantity": 5}),
    ]
    main = [
        order("O7", "K-261130-000002"),
        order("O3", "K-261130-000003-1"),
        order("O4", "K-261130-000003-1"),
        order("O9", "X-1", status="OPEN"),
        order("O8", "X-2", status="OPEN", quantity=7),
    ]
    found = journal_mismatches(entries, {KEY: -20}, main, {"C001"})
    assert kinds(found) == [
        ("duplicate_order", "K-261130-000003"),
        ("modify_not_on_main", "K-261130-000005"),
        ("not_flat", "K-261130-000003"),
        ("order_id_differs", "K-261130-000002"),
        ("order_missing_on_main", "K-261130-000001"),
        ("order_still_open", "K-261130-000004"),
    ]
    not_flat = next(m for m in found if m["kind"] == "not_flat")
    assert (not_flat["expected"], not_flat["main"]) == (0, -20)
    modify = next(m for m in found if m["kind"] == "modify_not_on_main")
    assert (modify["expected"], modify["main"]) == ({"quantity": 5}, {"quantity": "7"})


def test_slices_belong_to_their_own_square_off_only():
    """Another square-off's slices (an id that merely starts alike) are not counted as this one's."""
    entries = [
        entry(1, "SQUARE_OFF", "K-261130-000001", client_id="C001"),
        entry(2, "SQUARE_OFF", "K-261130-0000011", client_id="C002"),
    ]
    main = [
        order("O1", "K-261130-000001-1"),
        order("O2", "K-261130-0000011-1", client_id="C002"),
        order("O3", "K-261130-0000011-1", client_id="C002"),
    ]
    found = journal_mismatches(entries, {}, main, {"C001", "C002"})
    assert kinds(found) == [("duplicate_order", "K-261130-0000011")]


def test_a_later_entry_on_the_same_position_and_out_of_scope_entries_are_not_judged():
    entries = [
        entry(1, "SQUARE_OFF", "K-261130-000001"),  # a later PLACE changed this position on purpose
        entry(2, "PLACE", "K-261130-000002", main_order_id="O2"),
        entry(3, "PLACE", "K-261130-000003", client_id="C999"),
    ]  # outside the user's scope now
    main = [order("O2", "K-261130-000002")]
    assert journal_mismatches(entries, {KEY: 10}, main, {"C001"}) == []
    assert kinds(journal_mismatches(entries, {KEY: 10}, main, None)) == [
        ("order_missing_on_main", "K-261130-000003")
    ]


def test_a_discarded_square_off_is_not_judged_against_main():
    """A supervisor discarded it (moot, never sent): main keeping the position is not a mismatch.
    A square-off the replay found moot (already flat) is judged: main must still be flat."""
    discarded = {
        **entry(1, "SQUARE_OFF", "K-261130-000001", state="moot"),
        "reason": "discarded by super1 (was held: stale)",
    }
    assert journal_mismatches([discarded], {KEY: 10}, [], {"C001"}) == []
    found = journal_mismatches(
        [{**entry(1, "SQUARE_OFF", "K-261130-000001", state="moot"), "reason": "already flat on main"}],
        {KEY: 10},
        [],
        {"C001"},
    )
    assert kinds(found) == [("not_flat", "K-261130-000001")]
    assert found[0]["next_step"] == "square off again: lifeboat squareoff --client C001 --symbol INFY"


def _book(positions, open_orders=None):
    return {"positions": positions, "open_orders": open_orders or {}, "trades": set()}


def test_what_moved_on_main_is_a_finding_only_for_a_client_this_console_squared_off():
    """Main keeps trading through other channels during an outage: a change for a client the
    journal did not flatten is listed for information; for a squared-off client a position open
    again on main, or an open order that can reopen one, is a mismatch with its next step."""
    from sync.reconcile import moved_on_main
    from sync.verdict import CLEAN, MISMATCHES, headline, verdict

    squared = {**entry(1, "SQUARE_OFF", "K-261130-000001"), "target_order_id": None}  # C001 NSE INFY MIS
    other_key, reopened_key = ("C002", "NSE", "TCS", "CNC"), ("C001", "NSE", "ITC", "CNC")
    local = _book({KEY: 10, other_key: 5, reopened_key: 0})
    main_positions = {KEY: 0, other_key: 7, reopened_key: 3}
    stray = order("O5", "ELSEWHERE-1", status="OPEN", client_id="C001")
    found = moved_on_main(local, main_positions, {"O5": stray}, [squared], {"C001", "C002"})
    by = {(m["kind"], m["client_id"], m.get("symbol")): m for m in found}
    assert by[("position_differs", "C002", "TCS")]["finding"] is False
    assert by[("position_differs", "C001", "ITC")]["finding"] is True
    assert "square off again" in by[("position_differs", "C001", "ITC")]["next_step"]
    assert by[("order_only_on_main", "C001", "INFY")]["finding"] is True

    info_only = {
        "counts": {"applied": 1},
        "mismatches": [],
        "moved_on_main": [by[("position_differs", "C002", "TCS")]],
    }
    assert verdict(info_only) == CLEAN
    line = headline(info_only)
    assert line.startswith("CLEAN:") and "1 change on main during the outage, listed for information" in line
    with_finding = {**info_only, "mismatches": [by[("position_differs", "C001", "ITC")]]}
    assert verdict(with_finding) == MISMATCHES and "equals" not in headline(with_finding)


def test_the_report_lists_changes_on_main_apart_from_its_mismatches(capsys):
    """`sync report` text: a table of mismatches with their next step, and a separate one of
    changes on main listed for information."""
    from console.cmd_sync import print_report

    finding = {
        "kind": "not_flat",
        "client_id": "C001",
        "symbol": "INFY",
        "expected": 0,
        "main": 5,
        "detail": "moved after the square-off",
        "next_step": "square off again: lifeboat squareoff --client C001",
    }
    info = {
        "kind": "position_differs",
        "client_id": "C002",
        "symbol": "TCS",
        "local": 5,
        "main": 7,
        "detail": "moved on main while this console could not see it",
        "finding": False,
    }
    report = {
        "id": 4,
        "created_at": NOW.isoformat(),
        "user": "dealer1",
        "trading_date": "2026-11-30",
        "counts": {"applied": 1},
        "entries": [],
        "mismatches": [finding],
        "moved_on_main": [info],
    }
    print_report(report)
    text = capsys.readouterr().out
    mism, moved = text.index("Mismatches"), text.index("Changed on main during the outage")
    assert mism < text.index("square off again") < moved < text.index("C002")
    assert "C002" not in text[:moved]
