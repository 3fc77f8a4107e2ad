"""The lock screen: covers everything until the user's password is given again.

A full screen, not a modal over the desk: nothing of the book (clients, positions, MTM)
is drawn around it, and notices that arrive while locked wait until the unlock
(LifeboatApp.notify).  The check is the offline verifier and signed grant on this
console (through the session, on the live session's loop), so unlocking works whether main is up or down.
"""

from __future__ import annotations

from textual import getters, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Input, Static

from console.tui.app import LifeboatApp
from console.tui.messages import Unlocked, UnlockFailed
from console.tui.outcome import said


class LockScreen(Screen[None]):
    app = getters.app(LifeboatApp)  # typed: the console's own app
    DEFAULT_CSS = """
    LockScreen { align: center middle; }
    """

    def __init__(self, user: str) -> None:
        super().__init__()
        self.user = user

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="lock-box"):
            yield Static(f"LOCKED  -  {self.user}", id="lock-title")
            yield Static("Enter your password to unlock.")
            yield Input(password=True, id="lock-password")
            yield Static("", id="lock-error")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value:
            self.query_one("#lock-error", Static).update("Checking…")
            self.check(event.value)

    @work(exclusive=True, group="unlock", exit_on_error=False)
    async def check(self, password: str) -> None:
        from console.service import ServiceError

        try:
            await self.app.live.call(self.app.session.check_password, password)
        except ServiceError as exc:
            self.post_message(UnlockFailed(said(exc)))
            return
        self.post_message(Unlocked())

    def on_unlocked(self, _msg: Unlocked) -> None:
        self.app.locked = False
        self.dismiss(None)
        self.app.release_held_notices()

    def on_unlock_failed(self, msg: UnlockFailed) -> None:
        self.query_one("#lock-error", Static).update(msg.message)
        self.query_one(Input).value = ""
