"""Login: user and password, and a plain statement of how the login will happen.

The screen probes main every two seconds (on the live session's loop, awaited by a
worker): reachable means an ONLINE login
against the main system; unreachable means an OFFLINE login against this console's
signed offline grant and local verifier (backup mode).  Errors stay on the screen.
"""

from __future__ import annotations

from textual import getters, on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Button, Input, Label, Static

from console.tui.app import LifeboatApp
from console.tui.messages import LoggedIn, LoginFailed, LoginProbed
from console.tui.outcome import said


class LoginScreen(Screen):
    app = getters.app(LifeboatApp)  # typed: the console's own app

    def __init__(self, user: str | None = None) -> None:
        super().__init__()
        self._user = user or ""
        self.online: bool | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="login-box"):
            yield Static("LIFEBOAT  -  dealer console", id="login-title")
            yield Label("User")
            yield Input(self._user, placeholder="dealer id", id="login-user")
            yield Label("Password")
            yield Input(password=True, id="login-password")
            yield Static("Checking the main system…", id="login-how")
            yield Static("", id="login-error")
            yield Button("Log in", id="login-go", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#login-password" if self._user else "#login-user", Input).focus()
        self.probe()

    @work(exclusive=True, group="login-probe", exit_on_error=False)
    async def probe(self) -> None:
        r = await self.app.live.call(self.app.session.probe, timeout=2.0)
        self.post_message(LoginProbed(r.ok, r.detail, r.latency_ms))

    def on_login_probed(self, msg: LoginProbed) -> None:
        self.online = msg.ok
        how = self.query_one("#login-how", Static)
        if msg.ok:
            how.update(f"Main system reachable ({msg.latency_ms:.0f} ms): you will log in ONLINE.")
            how.set_classes("online")
        else:
            how.update(
                f"Main system unreachable ({msg.detail}): you will log in OFFLINE "
                "against this console's offline grant (backup mode)."
            )
            how.set_classes("offline")
        if self.is_attached:
            self.set_timer(2.0, self.probe, name="login-reprobe")

    @on(Input.Submitted, "#login-user")
    def _next(self) -> None:
        self.query_one("#login-password", Input).focus()

    @on(Input.Submitted, "#login-password")
    @on(Button.Pressed, "#login-go")
    def submit(self) -> None:
        user = self.query_one("#login-user", Input).value.strip()
        password = self.query_one("#login-password", Input).value
        if not user or not password:
            self._error("Enter your user id and password.")
            return
        if self.online is None:
            self._error("Still checking the main system; try again in a moment.")
            return
        self._error("")
        self.query_one("#login-how", Static).update(
            "Logging in " + ("ONLINE…" if self.online else "OFFLINE…")
        )
        self.login(user, password, self.online)

    @work(exclusive=True, group="login", exit_on_error=False)
    async def login(self, user: str, password: str, online: bool) -> None:
        from console.service import ServiceError

        try:
            ident = await self.app.live.call(self.app.session.login, user, password, online=online)
        except ServiceError as exc:
            self.post_message(LoginFailed(said(exc)))
            return
        self.post_message(LoggedIn(ident.how))

    def on_login_failed(self, msg: LoginFailed) -> None:
        self._error(msg.message)
        self.query_one("#login-password", Input).value = ""
        self.probe()

    def on_logged_in(self, msg: LoggedIn) -> None:
        self.app.open_desk()

    def _error(self, text: str) -> None:
        self.query_one("#login-error", Static).update(text)
