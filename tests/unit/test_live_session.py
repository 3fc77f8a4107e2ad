"""The live session (console/live.py) without a backend: one loop in one thread for every
call, the service's calls on it share one bound client, and closing ends the thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def live(tmp_path):
    from console.live import LiveSession
    from console.service import Service

    svc = Service(backend_url="http://127.0.0.1:9", home=tmp_path / "home", user="dealer1")
    session = LiveSession(svc)
    yield session
    session.close()
    svc.close()


def test_every_call_runs_on_the_one_loop_with_the_one_client(live):
    async def where():
        return threading.current_thread().name, asyncio.get_running_loop(), live.service.bound_client()

    first = live.call_blocking(where)
    second = live.submit(where).result(timeout=5)

    async def from_another_loop():
        return await live.call(where)

    third = asyncio.run(from_another_loop())
    assert first[0] == "lifeboat-live"
    assert first == second == third  # same thread, same loop, same client
    assert first[2] is not None and first[2] is live._client
    assert live.service.bound_client() is None  # this thread is not the session's loop


def test_a_callers_cancel_does_not_cancel_the_call(live):
    done = threading.Event()

    async def slow():
        await asyncio.sleep(0.2)
        done.set()

    async def caller():
        task = asyncio.create_task(live.call(slow))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(caller())
    assert done.wait(5)


def test_snapshot_before_any_runtime_and_close(live):
    snap = live.snapshot()
    assert not snap.hosted and not snap.running and not snap.replaying

    async def nothing():
        return 1

    assert live.call_blocking(nothing) == 1
    thread = live._thread
    live.close()
    assert thread is not None and not thread.is_alive()
    assert live.service._bound is None  # unbound and closed with the loop
    with pytest.raises(RuntimeError):
        live.submit(nothing)
