"""Background order flow (``--activity RATE``): small random orders for random
clients so mirrors and benches see events without a person at the keyboard.

A restart on the same ``--db`` continues the flow; it does not start it again.  The
generator is seeded from the seed AND from what is persisted (how many of its orders
the book already holds), and numbers its client_order_ids after the highest one
stored.  Seeded from the seed alone, every restart replayed the same orders (same
clients, symbols, sides, quantities) as fresh ones, inventing activity that main had
already had."""

from __future__ import annotations

import asyncio
import logging
import random

from contract import wire
from contract.wire import Exchange, OrderType, Product, Side
from mainsim.book import ApiError, Book

log = logging.getLogger("mainsim.activity")

PLACED_BY = "sim"
PREFIX = "sim-"


def persisted(book: Book) -> tuple[int, int]:
    """(how many activity orders the book holds, the highest number in their ids)."""
    count = top = 0
    for order in book.orders.values():
        if order.placed_by != PLACED_BY or not order.client_order_id.startswith(PREFIX):
            continue
        count += 1
        tail = order.client_order_id.rsplit("-", 1)[-1]
        if tail.isdigit():
            top = max(top, int(tail))
    return count, top


class Activity:
    def __init__(self, book: Book, seed: int, rate: float):
        self.book = book
        self.rate = rate
        done, self.count = persisted(book)
        # a fresh db starts where it always did; a restart goes on from what main already holds
        self.rng = random.Random(seed * 104729 + 3 if done == 0 else f"activity:{seed}:{done}:{self.count}")
        self.seed = seed

    def one(self) -> None:
        book = self.book
        client = self.rng.choice(sorted(book.clients))
        inst = self.rng.choice(sorted(book.instruments.values(), key=lambda i: (i.exchange.value, i.symbol)))
        qty = inst.lot_size if inst.exchange is Exchange.NFO else self.rng.randint(1, 10)
        limit = self.rng.random() < 0.4
        price = None
        side = self.rng.choice((Side.BUY, Side.SELL))
        if limit:
            offset = self.rng.randint(-3, 3) * inst.tick_size
            price = min(max(inst.last_price + offset, inst.lower_band), inst.upper_band)
        self.count += 1
        req = wire.OrderRequest(
            client_order_id=f"{PREFIX}{self.seed}-{self.count}",
            client_id=client,
            exchange=inst.exchange,
            symbol=inst.symbol,
            side=side,
            quantity=qty,
            product=Product.MIS,
            order_type=OrderType.LIMIT if limit else OrderType.MARKET,
            price=price,
        )
        try:
            book.place(req, placed_by=PLACED_BY)
        except ApiError:
            pass  # a limit said no: the generator just moves on

    async def run(self) -> None:
        if self.rate <= 0:
            return
        interval = 1.0 / self.rate
        while True:
            await asyncio.sleep(self.rng.expovariate(1.0 / interval))
            try:
                self.one()
            except Exception:
                log.exception("activity order failed")
