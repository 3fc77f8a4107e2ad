"""Square-off (F10): a position, a client, or the whole scope; preview every leg, then confirm.

The preview is the service's own dry run (same planning as the real thing, in the mode
the console is in), so what the dealer confirms is what will be sent or journaled.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Select, Static

from console.tui.app import LifeboatApp
from console.tui.messages import ActionDone

SCOPES = (("This position", "position"), ("This client", "client"), ("Whole scope", "all"))
# Fixed widths: auto-sized columns grew when the legs landed, and the header line stayed
# painted at the widths it had before (about one preview in two).  With widths that do not
# depend on the data the header never changes, so it cannot go stale; they fit the dialog.
LEG_COLUMNS = (
    ("Client", 8),
    ("Exch", 4),
    ("Symbol", 14),
    ("Prod", 4),
    ("Side", 4),
    ("Qty", 7),
    ("Outcome", 28),
)
CANCEL_COLUMNS = (("Cancel order", 28), ("Client", 8), ("Symbol", 14), ("Outcome", 28))


class SquareOffScreen(ModalScreen[object]):
    app = getters.app(LifeboatApp)  # typed: the console's own app
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="squareoff.close"),
        Binding("y", "confirm", "Confirm", id="squareoff.confirm"),
    ]

    def __init__(self, *, position: dict | None, client_id: str | None, clients: list[str]) -> None:
        super().__init__()
        self.position = position
        self.client_id = client_id
        self.clients = clients
        self.preview = None
        self.result = None
        self.busy = False
        self.asked = 0  # the newest question; older answers are dropped
        self.asked_scope: dict | None = None
        self.preview_scope: dict | None = None  # the scope the preview on screen is for
        self.already: list[tuple[dict, dict]] = []  # (leg, its square-off journaled and not yet on main)
        self._pending_by_tag: dict[int, dict] = {}

    def compose(self) -> ComposeResult:
        scope = "position" if self.position else ("client" if self.client_id else "all")
        with Vertical(classes="dialog", id="squareoff-box"):
            yield Static("SQUARE OFF", id="squareoff-title")
            with Horizontal(classes="row"):
                yield Select(SCOPES, value=scope, allow_blank=False, id="so-scope")
                yield Select(
                    [(c, c) for c in self.clients],
                    value=self.client_id if self.client_id in self.clients else Select.BLANK,
                    id="so-client",
                    prompt="client",
                )
            yield Static("", id="so-what")
            yield Static("", id="so-already")  # a square-off of these positions is already journaled
            table: DataTable[str] = DataTable(id="so-legs", cursor_type="row")
            for label, width in LEG_COLUMNS:
                table.add_column(label, width=width)
            yield table
            cancels: DataTable[str] = DataTable(
                id="so-cancels", cursor_type="none"
            )  # the open orders it cancels
            for label, width in CANCEL_COLUMNS:
                cancels.add_column(label, width=width)
            yield cancels
            yield Static("", id="so-status")
            with Horizontal(classes="buttons"):
                yield Button("Confirm (y)", id="so-go", variant="error", disabled=True)
                yield Button("Close (Esc)", id="so-close")

    def on_mount(self) -> None:
        self.query_one("#so-already").display = False
        self.query_one("#so-cancels").display = False
        self.refresh_preview()

    def scope(self) -> dict:
        kind = self.query_one("#so-scope", Select).value
        client = self.query_one("#so-client", Select).value
        client = None if client is Select.BLANK else client
        if kind == "position" and self.position:
            return {"client_id": self.position["client_id"], "symbol": self.position["symbol"]}
        if kind in ("client", "position"):
            return {"client_id": client}
        return {}

    def describe(self, scope: dict) -> str:
        if "symbol" in scope:
            return f"{scope['symbol']} for client {scope['client_id']}"
        if scope.get("client_id"):
            return f"every position of client {scope['client_id']}"
        return "EVERY position in your scope"

    @on(Select.Changed)
    def _scope_changed(self) -> None:
        """A select moved.  Mounting them reports their first values too: the scope asked for
        at mount, not asked again (each ask is a dry run against main)."""
        if self.scope() != self.asked_scope:
            self.refresh_preview()

    def refresh_preview(self) -> None:
        scope = self.scope()
        self.preview = None
        self.query_one("#so-go", Button).disabled = True
        if "client_id" in scope and scope["client_id"] is None:
            self.query_one("#so-status", Static).update("choose a client")
            return
        self.query_one("#so-what", Static).update(
            f"Flatten {self.describe(scope)}; open orders in it are cancelled."
        )
        self.query_one("#so-status", Static).update("previewing…")
        self.busy = True
        self.asked += 1
        self.asked_scope = scope
        self.app.run_trade(self._preview(scope, self.asked), reply_to=self, tag=self.asked)

    def _preview(self, scope: dict, tag: int):
        """The dry run, and first the square-offs already journaled in the scope (worker thread)."""

        async def preview(session):
            pending = await asyncio.to_thread(session.service.pending_squareoffs, scope.get("client_id"))
            self._pending_by_tag[tag] = pending  # read by on_action_done, after this answer is posted
            return await session.squareoff(dry_run=True, **scope)

        return preview

    def on_action_done(self, msg: ActionDone) -> None:
        if msg.tag != self.asked:
            return  # an answer to a scope the dealer has since changed
        self.busy = False
        res = msg.result
        status = self.query_one("#so-status", Static)
        if res is None:
            status.update(msg.summary)
            return
        pending = self._pending_by_tag.pop(msg.tag, {}) if res.dry_run else {}
        self._pending_by_tag.clear()
        already = {}
        for leg in res.legs:
            key = (leg.get("client_id"), leg.get("exchange"), leg.get("symbol"), leg.get("product"))
            if key in pending:
                already[key] = (leg, pending[key])
        table = self.query_one("#so-legs", DataTable)
        table.clear()
        for leg in res.legs:
            key = (leg.get("client_id"), leg.get("exchange"), leg.get("symbol"), leg.get("product"))
            outcome = leg.get("outcome") + (f": {leg['reason']}" if leg.get("reason") else "")
            if key in already:
                outcome = f"AGAIN (#{already[key][1]['seq']} {already[key][1]['state']}) {outcome}"
            table.add_row(
                leg.get("client_id"),
                leg.get("exchange"),
                leg.get("symbol"),
                leg.get("product"),
                leg.get("side"),
                str(leg.get("quantity")),
                outcome,
            )
        self._show_cancels(res.cancels)
        if res.dry_run:
            self.preview, self.preview_scope = res, self.asked_scope
            self.already = list(already.values())
            self._show_already(res.mode)
            cancels = len(res.cancels)
            if not res.legs and not cancels:
                status.update("Nothing to square off in this scope.")
                return
            status.update(
                f"{len(res.legs)} leg(s) and {cancels} open order(s) to cancel, in {res.mode}. "
                + (
                    ("Press y to send it anyway." if res.mode == "ONLINE" else "Press y to journal it again.")
                    if already
                    else "Press y to confirm."
                )
            )
            self.query_one("#so-go", Button).disabled = False
        else:
            self.result = res
            self.query_one("#so-go", Button).display = False  # done: only Close is left
            status.update(f"{msg.summary}  (Esc to close)")
            self.app.notify(
                msg.summary, title="Square-off", severity="information" if not res.rejected else "error"
            )

    def _show_already(self, mode: str) -> None:
        """Say it before the same legs are offered again: these positions already have a
        square-off journaled that main has not got yet."""
        box = self.query_one("#so-already", Static)
        if not self.already:
            box.display = False
            return
        what = "; ".join(
            f"{leg['symbol']} {leg['client_id']} {p.get('side') or ''} {p.get('quantity')} "
            f"(#{p['seq']} {p['state']})".replace("  ", " ")
            for leg, p in self.already[:6]
        )
        more = f" and {len(self.already) - 6} more" if len(self.already) > 6 else ""
        then = (
            "confirming sends the orders now; the journaled one is recomputed against main's position when "
            "it is replayed"
            if mode == "ONLINE"
            else "confirming journals the same square-off again"
        )
        box.update(f"ALREADY JOURNALED, not yet on main: {what}{more}. It is sent when main answers; {then}.")
        box.display = True

    def _show_cancels(self, cancels: list[dict]) -> None:
        table = self.query_one("#so-cancels", DataTable)
        table.clear()
        for c in cancels:
            which = c.get("order_id") or f"{c.get('client_order_id')} (journaled)"
            outcome = c.get("outcome") or "dry_run"
            outcome = "to cancel" if outcome == "dry_run" else outcome
            table.add_row(
                which,
                c.get("client_id"),
                c.get("symbol"),
                outcome + (f": {c['reason']}" if c.get("reason") else ""),
            )
        table.display = bool(cancels)

    @on(Button.Pressed, "#so-go")
    def action_confirm(self) -> None:
        if self.preview is None or self.busy or self.result is not None:
            return
        scope = self.scope()
        self.busy = True
        self.query_one("#so-go", Button).disabled = True
        self.query_one("#so-status", Static).update("squaring off…")
        self.asked += 1
        self.app.run_trade(lambda s: s.squareoff(**scope), reply_to=self, tag=self.asked)

    @on(Button.Pressed, "#so-close")
    def action_close(self) -> None:
        self.dismiss(self.result)
