"""The order book of the simulated main system: orders, fills, trades and net
positions for every client, and the global event sequence that announces them.

Runs on the server's event loop only (no locks): each public method changes the
book, commits the change to the Store in one transaction, then hands the events
to ``publish`` for the stream.  Nothing is acknowledged before it is on disk.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from contract import wire
from contract.ordershape import PRICED, TRIGGERED
from contract.wire import OrderStatus, Side, Validity
from mainsim import positions as posmath
from mainsim.orderchecks import Reject, check_limits, check_shape
from mainsim.store import Changes, Store, position_key
from mainsim.tradingday import utcnow

log = logging.getLogger("mainsim.book")


class ApiError(Exception):
    """An answer other than success: HTTP status + wire.ErrorDetail."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


class Book:
    def __init__(
        self,
        store: Store,
        trading_date: date,
        publish: Callable[[list[tuple[int, str, str]]], None],
        retention: int = 200_000,
    ):
        self.store = store
        self.trading_date = trading_date
        self.publish = publish
        self.retention = retention
        self.instruments: dict[tuple[wire.Exchange, str], wire.Instrument] = {
            (i.exchange, i.symbol): i for i in store.instruments()
        }
        self.clients: dict[str, wire.Client] = {c.client_id: c for c in store.clients()}
        self.limits: dict[str, wire.ClientLimit] = {lim.client_id: lim for lim in store.limits()}
        self.orders: dict[str, wire.Order] = {}
        self.order_num: dict[str, int] = {}
        self.requests: dict[str, wire.OrderRequest] = {}
        self.by_coid: dict[str, str] = {}
        self.resting: dict[tuple[wire.Exchange, str], dict[str, wire.Order]] = defaultdict(dict)
        for num, order, req in store.orders():
            self._index(num, order, req)
        self.trades: list[wire.Trade] = []
        self.next_trade = 1
        for num, trade in store.trades():
            self.trades.append(trade)
            self.next_trade = num + 1
        self.next_order = max(self.order_num.values(), default=0) + 1
        self.positions: dict[tuple, wire.Position] = {position_key(p): p for p in store.positions()}
        self.positions_of: dict[str, list[wire.Position]] = defaultdict(list)
        for p in self.positions.values():
            self.positions_of[p.client_id].append(p)
        self.seq = store.max_seq()
        self.pruned_to = int(store.meta("events_pruned_to") or 0)

    # ------------------------------------------------------------------ helpers
    def _index(self, num: int, order: wire.Order, req: wire.OrderRequest) -> None:
        self.orders[order.order_id] = order
        self.order_num[order.order_id] = num
        self.requests[order.order_id] = req
        self.by_coid[order.client_order_id] = order.order_id
        if order.status in wire.OPEN_STATUSES:
            self.resting[(order.exchange, order.symbol)][order.order_id] = order

    def clients_of(self, dealer_id: str | None) -> list[str]:
        return sorted(
            c.client_id for c in self.clients.values() if dealer_id is None or c.dealer_id == dealer_id
        )

    def last_price(self, p: wire.Position) -> Decimal:
        inst = self.instruments.get((p.exchange, p.symbol))
        return inst.last_price if inst else p.last_price

    def marked(self, p: wire.Position) -> wire.Position:
        return posmath.mark(p, self.last_price(p))

    def _event(self, ch: Changes, kind: str, client_id: str, data) -> None:
        self.seq += 1
        model = {"order": wire.OrderEvent, "trade": wire.TradeEvent, "position": wire.PositionEvent}[kind]
        ch.events.append((self.seq, client_id, model(type=kind, seq=self.seq, data=data).model_dump_json()))

    def _commit(self, ch: Changes) -> None:
        seq_before = self.seq - len(ch.events)
        try:
            self.store.commit(ch)
        except Exception:
            self.seq = seq_before
            raise
        if ch.events:
            self.publish(ch.events)
            if self.seq - self.pruned_to > self.retention + max(1, self.retention // 10):
                self.pruned_to = self.seq - self.retention
                self.store.prune_events(self.pruned_to)

    # ------------------------------------------------------------------ execution
    def _fill(self, order: wire.Order, inst: wire.Instrument, ch: Changes) -> None:
        now = utcnow()
        price = inst.last_price
        trade = wire.Trade(
            trade_id=f"T{self.next_trade:09d}",
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            client_id=order.client_id,
            exchange=order.exchange,
            symbol=order.symbol,
            side=order.side,
            product=order.product,
            quantity=order.quantity,
            price=price,
            traded_at=now,
        )
        ch.trades.append((self.next_trade, trade))
        self.next_trade += 1
        self.trades.append(trade)
        order.filled_quantity = order.quantity
        order.average_price = price
        order.status = OrderStatus.COMPLETE
        order.updated_at = now
        self.resting.get((order.exchange, order.symbol), {}).pop(order.order_id, None)
        key = (order.client_id, order.exchange.value, order.symbol, order.product.value)
        pos = self.positions.get(key)
        if pos is None:
            pos = posmath.flat(order.client_id, order.exchange, order.symbol, order.product, price, now)
            self.positions[key] = pos
            self.positions_of[order.client_id].append(pos)
        posmath.apply_fill(pos, order.side, order.quantity, price, now)
        ch.positions[key] = pos
        self._event(ch, "trade", order.client_id, trade)
        self._event(ch, "position", order.client_id, pos)

    def _execute(self, order: wire.Order, inst: wire.Instrument, ch: Changes) -> bool:
        """Fill or trigger the order if the market allows it now.  True when it changed."""
        last = inst.last_price
        buy = order.side is Side.BUY
        changed = False
        if order.status is OrderStatus.TRIGGER_PENDING:
            trigger = order.trigger_price
            assert trigger is not None, "a pending stop-loss has a trigger price (ordershape.check)"
            if not (last >= trigger if buy else last <= trigger):
                return False
            order.status = OrderStatus.OPEN  # triggered: an SL becomes a limit, an SL-M a market order
            order.updated_at = utcnow()
            changed = True
        if order.status is OrderStatus.OPEN:
            if order.order_type in PRICED:
                limit = order.price
                assert limit is not None, "a LIMIT or SL order has a price (ordershape.check)"
                reached = (last <= limit) if buy else (last >= limit)
            else:
                reached = True  # MARKET, or a triggered SL-M: at the market
            if reached:
                self._fill(order, inst, ch)
                changed = True
        return changed

    def _settle(self, order: wire.Order, inst: wire.Instrument, ch: Changes) -> None:
        self._execute(order, inst, ch)
        if order.status in wire.OPEN_STATUSES:
            if order.validity is Validity.IOC:
                order.status = OrderStatus.CANCELLED
                order.status_reason = "IOC order could not be filled at once"
                self.resting.get((order.exchange, order.symbol), {}).pop(order.order_id, None)
            else:
                self.resting[(order.exchange, order.symbol)][order.order_id] = order

    def _validate(self, req: wire.OrderRequest, existing: wire.Order | None = None) -> wire.Instrument:
        try:
            inst = check_shape(req, self.instruments.get((req.exchange, req.symbol)))
            pos = self.positions_of.get(req.client_id, [])
            check_limits(req, inst, self.limits.get(req.client_id), pos, self.last_price)
        except Reject as r:
            raise ApiError(422, r.code, r.message, r.field) from None
        return inst

    # ------------------------------------------------------------------ public actions
    def place(self, req: wire.OrderRequest, placed_by: str) -> tuple[wire.Order, bool]:
        """Place an order.  Returns (order, created); an accepted duplicate returns (order, False).
        A request that fails validation is answered 422 and stores nothing, so the same
        client_order_id can be retried with corrected parameters."""
        if req.client_id not in self.clients:
            raise ApiError(422, "unknown_client", f"No client {req.client_id}.", "client_id")
        known = self.by_coid.get(req.client_order_id)
        if known is not None:
            original = self.requests[known]
            if original.client_id == req.client_id and original.same_parameters(req):
                return self.orders[known], False
            raise ApiError(
                409,
                "idempotency_conflict",
                f"client_order_id {req.client_order_id} was already used for a different order.",
                "client_order_id",
            )
        inst = self._validate(req)
        now = utcnow()
        num = self.next_order
        order = wire.Order(
            order_id=f"O{num:09d}",
            client_order_id=req.client_order_id,
            client_id=req.client_id,
            exchange=req.exchange,
            symbol=req.symbol,
            side=req.side,
            quantity=req.quantity,
            filled_quantity=0,
            average_price=Decimal(0),
            product=req.product,
            order_type=req.order_type,
            price=req.price if req.price else None,
            trigger_price=req.trigger_price if req.trigger_price else None,
            validity=req.validity,
            disclosed_quantity=req.disclosed_quantity,
            status=OrderStatus.TRIGGER_PENDING if req.order_type in TRIGGERED else OrderStatus.OPEN,
            placed_by=placed_by,
            created_at=now,
            updated_at=now,
        )
        ch = Changes()
        self._settle(order, inst, ch)
        ch.orders[order.order_id] = (num, order, req.model_dump_json())
        self._event(ch, "order", order.client_id, order)
        # the order must be durable before it is indexed (a failed commit leaves no trace)
        self._commit(ch)
        self.next_order = num + 1
        self._index(num, order, req)
        return order, True

    def _open_order(self, order_id: str) -> wire.Order:
        order = self.orders.get(order_id)
        if order is None:
            raise ApiError(404, "not_found", f"No order {order_id}.")
        return order

    def modify(self, order: wire.Order, change: wire.OrderModify) -> wire.Order:
        if order.status not in wire.OPEN_STATUSES:
            raise ApiError(
                422, "not_open", f"Order {order.order_id} is {order.status.value}, not open.", "order_id"
            )
        updates = change.model_dump(exclude_unset=True, exclude_none=True)
        if not updates:
            raise ApiError(422, "invalid_request", "Nothing to modify: give at least one field.")
        current = wire.OrderRequest(
            client_order_id=order.client_order_id,
            client_id=order.client_id,
            exchange=order.exchange,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            product=order.product,
            order_type=order.order_type,
            price=order.price,
            trigger_price=order.trigger_price,
            validity=order.validity,
            disclosed_quantity=order.disclosed_quantity,
        )
        merged = current.model_copy(update=updates)
        if "order_type" in updates and merged.order_type not in PRICED and "price" not in updates:
            merged.price = None
        if "order_type" in updates and merged.order_type not in TRIGGERED and "trigger_price" not in updates:
            merged.trigger_price = None
        inst = self._validate(merged)
        ch = Changes()
        order.quantity = merged.quantity
        order.price = merged.price if merged.price else None
        order.trigger_price = merged.trigger_price if merged.trigger_price else None
        order.order_type = merged.order_type
        order.validity = merged.validity
        order.disclosed_quantity = merged.disclosed_quantity
        if merged.order_type in TRIGGERED and order.status is OrderStatus.OPEN and "trigger_price" in updates:
            order.status = OrderStatus.TRIGGER_PENDING
        if merged.order_type not in TRIGGERED:
            order.status = OrderStatus.OPEN
        order.updated_at = utcnow()
        self._settle(order, inst, ch)
        ch.orders[order.order_id] = (self.order_num[order.order_id], order, None)
        self._event(ch, "order", order.client_id, order)
        self._commit(ch)
        return order

    def cancel(self, order: wire.Order) -> wire.Order:
        if order.status not in wire.OPEN_STATUSES:
            raise ApiError(
                422, "not_open", f"Order {order.order_id} is {order.status.value}, not open.", "order_id"
            )
        order.status = OrderStatus.CANCELLED
        order.status_reason = "cancelled by user"
        order.updated_at = utcnow()
        self.resting.get((order.exchange, order.symbol), {}).pop(order.order_id, None)
        ch = Changes()
        ch.orders[order.order_id] = (self.order_num[order.order_id], order, None)
        self._event(ch, "order", order.client_id, order)
        self._commit(ch)
        return order

    def on_prices(self, moved: list[wire.Instrument]) -> None:
        """After a tick: fill or trigger resting orders the new prices reach (one transaction)."""
        ch = Changes()
        for inst in moved:
            book = self.resting.get((inst.exchange, inst.symbol))
            if not book:
                continue
            for order in list(book.values()):
                if self._execute(order, inst, ch):
                    if order.status not in wire.OPEN_STATUSES:
                        book.pop(order.order_id, None)
                    ch.orders[order.order_id] = (self.order_num[order.order_id], order, None)
                    self._event(ch, "order", order.client_id, order)
        if ch:
            self._commit(ch)

    def order(self, order_id: str) -> wire.Order:
        return self._open_order(order_id)
