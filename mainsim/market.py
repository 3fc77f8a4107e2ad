"""The simulated market: every tick a random subset of instruments moves by a few
whole ticks (a random walk that stays inside the day's band); resting orders the
new prices reach are filled by the Book; the prices go out as one TickMsg batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from contract import wire
from mainsim.book import Book
from mainsim.tradingday import utcnow

log = logging.getLogger("mainsim.market")


class Market:
    def __init__(self, book: Book, seed: int, tick_ms: int, broadcast, save_every_s: float = 5.0):
        self.book = book
        self.rng = random.Random(seed * 7919 + 1)
        self.tick_s = tick_ms / 1000
        self.broadcast = broadcast  # (json text) -> None, to every stream connection
        self.save_every_s = save_every_s
        self._instruments = sorted(book.instruments.values(), key=lambda i: (i.exchange.value, i.symbol))

    def step(self) -> list[wire.Instrument]:
        """Move a random subset by whole ticks, staying in the band.  Returns what moved."""
        if not self._instruments:
            return []
        moved = []
        count = max(1, len(self._instruments) // 8)
        for inst in self.rng.sample(self._instruments, count):
            steps = self.rng.choice((-3, -2, -1, -1, 1, 1, 2, 3))
            price = inst.last_price + steps * inst.tick_size
            price = min(max(price, inst.lower_band), inst.upper_band)
            if price != inst.last_price:
                inst.last_price = price
                moved.append(inst)
        return moved

    def tick_message(self, moved: list[wire.Instrument]) -> str:
        return wire.TickMsg(
            type="tick",
            seq=self.book.seq,
            server_time=utcnow(),
            ticks=[wire.Tick(exchange=i.exchange, symbol=i.symbol, last_price=i.last_price) for i in moved],
        ).model_dump_json()

    def save_prices(self) -> None:
        self.book.store.save_prices(
            (i.exchange.value, i.symbol, str(i.last_price)) for i in self._instruments
        )

    async def run(self) -> None:
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                moved = self.step()
                if moved:
                    self.broadcast(self.tick_message(moved))
                    self.book.on_prices(moved)
                if time.monotonic() - last_save >= self.save_every_s:
                    last_save = time.monotonic()
                    self.save_prices()
            except Exception:  # a bad tick must not stop the market
                log.exception("market tick failed")
