"""The live mirror's rules on a real store file, event by event (sync.mirror.Mirror.apply): an event older than
the row it would overwrite never rolls it back, a re-delivered trade is not stored twice, events at or below the
snapshot's seq are ignored, and the resume point commits with the batch.  The stream end to end, against a real
mainsim, is in test_sync_mirror."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from contract import wire
from localstore.db import open_store
from localstore.models import ClientRow, OrderRow, PositionRow, SyncState, TradeRow
from sync.mirror import Mirror

T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def order_ev(seq, status="OPEN", filled=0, order_id="O1"):
    return wire.OrderEvent(
        type="order",
        seq=seq,
        data=wire.Order(
            order_id=order_id,
            client_order_id=f"K-{order_id}",
            client_id="C001",
            exchange="NSE",
            symbol="INFY",
            side="BUY",
            quantity=10,
            filled_quantity=filled,
            average_price=Decimal("0"),
            product="MIS",
            order_type="LIMIT",
            price=Decimal("1500.5"),
            trigger_price=None,
            validity="DAY",
            disclosed_quantity=None,
            status=status,
            placed_by="dealer1",
            created_at=T0,
            updated_at=T0 + timedelta(seconds=seq),
        ),
    )


def position_ev(seq, net):
    return wire.PositionEvent(
        type="position",
        seq=seq,
        data=wire.Position(
            client_id="C001",
            exchange="NSE",
            symbol="INFY",
            product="MIS",
            net_quantity=net,
            average_price=Decimal("1500.5"),
            last_price=Decimal("1501"),
            realised_pnl=Decimal("0"),
            mtm=Decimal("5"),
            buy_quantity=max(net, 0),
            sell_quantity=max(-net, 0),
            updated_at=T0 + timedelta(seconds=seq),
        ),
    )


def trade_ev(seq, trade_id="T1"):
    return wire.TradeEvent(
        type="trade",
        seq=seq,
        data=wire.Trade(
            trade_id=trade_id,
            order_id="O1",
            client_order_id="K-O1",
            client_id="C001",
            exchange="NSE",
            symbol="INFY",
            side="BUY",
            product="MIS",
            quantity=10,
            price=Decimal("1500.5"),
            traded_at=T0 + timedelta(seconds=seq),
        ),
    )


def scoped_store(path):
    """A store whose snapshot holds client C001 (the mirror refuses events of other clients)."""
    store = open_store(path)
    with store.write() as s:
        s.add(ClientRow(client_id="C001", name="Client 1", dealer_id="dealer1"))
    return store


def book(store):
    with store.read() as s:
        orders = {
            r.order_id: (r.status.value, r.filled_quantity, r.updated_seq)
            for r in s.scalars(select(OrderRow))
        }
        positions = {r.symbol: (r.net_quantity, r.updated_seq) for r in s.scalars(select(PositionRow))}
        trades = s.scalar(select(func.count()).select_from(TradeRow))
        resume = s.get(SyncState, 1).last_event_seq
    return orders, positions, trades, resume


def test_newer_events_win_and_older_ones_never_roll_a_row_back(tmp_path):
    store = scoped_store(tmp_path / "store.db")
    mirror = Mirror(store)
    assert mirror.apply([order_ev(5), position_ev(6, 10), trade_ev(7)]) == 3
    assert book(store) == ({"O1": ("OPEN", 0, 5)}, {"INFY": (10, 6)}, 1, 7)

    # newer state of both rows, in one batch with an older one for the same order (the newest per key wins)
    assert mirror.apply([order_ev(9, "COMPLETE", 10), order_ev(8, "OPEN", 5), position_ev(10, 0)]) == 2
    assert book(store) == ({"O1": ("COMPLETE", 10, 9)}, {"INFY": (0, 10)}, 1, 10)

    # late and re-delivered events: nothing changes, the resume point does not go back
    assert mirror.apply([order_ev(6, "OPEN", 0), position_ev(4, 99), trade_ev(7)]) == 0
    assert book(store) == ({"O1": ("COMPLETE", 10, 9)}, {"INFY": (0, 10)}, 1, 10)
    assert (mirror.applied, mirror.skipped) == (5, 4)
    store.close()


def test_events_inside_the_snapshot_are_ignored(tmp_path):
    store = scoped_store(tmp_path / "store.db")
    mirror = Mirror(store)
    mirror.snapshot_taken(20)
    assert mirror.apply([order_ev(15), trade_ev(20), order_ev(21, order_id="O2")]) == 1
    orders, _, trades, resume = book(store)
    assert (sorted(orders), trades, resume) == (["O2"], 0, 21)
    store.close()
