"""contract.aio.wait_event: a loop built on it stops when cancelled, even when the cancel
arrives in the same loop turn as the event (asyncio.wait_for on 3.11 swallows that cancel;
an agent once hung in CI on it)."""

from __future__ import annotations

import asyncio

from contract.aio import wait_event


async def _loop(event: asyncio.Event, turns: list[int]) -> None:
    while True:
        await wait_event(event, 60)
        event.clear()
        turns.append(1)


def test_a_cancel_in_the_same_turn_as_the_event_stops_the_loop():
    async def main() -> bool:
        event, turns = asyncio.Event(), []
        task = asyncio.create_task(_loop(event, turns))
        await asyncio.sleep(0.01)  # the loop is waiting
        event.set()
        task.cancel()  # same turn: the wake and the cancel race
        done, _ = await asyncio.wait({task}, timeout=2)
        if not done:
            task.cancel()
        return bool(done) and task.cancelled()

    assert asyncio.run(main()), "the loop swallowed its cancel and ran on"


def test_wait_event_says_set_or_timed_out():
    async def main() -> tuple[bool, bool]:
        event = asyncio.Event()
        timed_out = await wait_event(event, 0.01)
        event.set()
        return timed_out, await wait_event(event, 0.01)

    assert asyncio.run(main()) == (False, True)
