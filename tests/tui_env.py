"""Helpers for the console's Pilot tests: a real mainsim, a real store, the real app.

The only fake is the keyring (tests/keyring_backend.py: no OS keyring runs on this
headless machine: the ``tui_keyring`` fixture, tests/conftest.py).  The ``cheap_scrypt``
fixture keeps the local verifier cheap.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.cli_env import PASSWORD

SIZE = (180, 50)


def make_app(url: str, home: Path, *, user: str = "dealer1", config=None, **kw):
    from console.service import Service
    from console.tui.app import LifeboatApp
    from console.tui.config import ConsoleConfig

    svc = Service(backend_url=url, home=home, user=user, dr_url=kw.pop("dr_url", None))
    cfg = config or ConsoleConfig(idle_lock_minutes=0)
    return LifeboatApp(svc, cfg, user=user, status_every=kw.pop("status_every", 0.3), **kw)


async def wait_for(pilot, predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; {_scene(pilot.app)}")


def _scene(app) -> str:
    """What the screen showed when a wait timed out: its class, its status lines and the notices
    (a worker's error is a notice), so a failure under CI load says why."""
    from textual.widgets import Static

    statuses = [str(w.render()) for w in app.screen.query(Static) if (w.id or "").endswith("status")]
    notices = [n.message for n in getattr(app, "_notifications", [])]
    return f"screen {type(app.screen).__name__}, status {statuses}, notices {notices}"


async def login(pilot, password: str = PASSWORD, expect: str = "ONLINE"):
    """Type the password on the login screen once it knows how it will log in; wait for the desk."""
    from console.tui.screens.desk import DeskScreen
    from console.tui.screens.login import LoginScreen

    app = pilot.app
    screen = await wait_for(
        pilot, lambda: isinstance(app.screen, LoginScreen) and app.screen, what="login screen"
    )
    await wait_for(pilot, lambda: screen.online is not None, what="the login probe")
    how = str(screen.query_one("#login-how").render())
    assert f"log in {expect}" in how, how
    screen.query_one("#login-password").value = password
    await pilot.press("enter")
    desk = await wait_for(pilot, lambda: isinstance(app.screen, DeskScreen) and app.screen, what="the desk")
    await wait_for(pilot, lambda: desk.book is not None and desk.book.clients, what="the book (BOD taken)")
    return desk


def run(coro):
    return asyncio.run(coro)
