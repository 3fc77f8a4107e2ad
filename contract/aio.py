"""Asyncio waits that a cancel always stops.

On Python 3.11, ``asyncio.wait_for(x, timeout)`` swallows a cancel that arrives in the same
loop turn as ``x`` completes (cpython gh-86296, fixed in 3.12): a loop written as
``while True: await wait_for(event.wait(), t)`` then runs on after its task was cancelled,
and whoever gathers it waits for ever (seen in CI: an agent that did not stop).  These
helpers use ``asyncio.timeout``, which keeps the cancel.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True when it was set."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
