"""Background order flow (``--activity RATE``): small random orders for random
clients so mirrors and benches see events without a person at the keyboard."""

from __future__ import annotations

import asyncio
import logging
import os
import random

from backend_client import wire
from backend_client.wire import Exchange, OrderType, Product, Side

from mainsim.book import ApiError, Book

log = logging.getLogger("mainsim.activity")


class Activity:
    def __init__(self, book: Book, seed: int, rate: float):
        self.book = book
        self.rate = rate
        self.rng = random.Random(seed * 104729 + 3)
        self.run_id = os.urandom(4).hex()  # client_order_ids stay unique across restarts
        self.count = 0

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
            client_order_id=f"sim-{self.run_id}-{self.count}", client_id=client, exchange=inst.exchange,
            symbol=inst.symbol, side=side, quantity=qty, product=Product.MIS,
            order_type=OrderType.LIMIT if limit else OrderType.MARKET, price=price)
        try:
            book.place(req, placed_by="sim")
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
