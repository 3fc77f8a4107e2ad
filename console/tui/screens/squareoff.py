"""Square-off (F10): a position, a client, or the whole scope; preview every leg, then confirm.

The preview is the service's own dry run (same planning as the real thing, in the mode
the console is in), so what the dealer confirms is what will be sent or journaled.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Select, Static

from console.tui.messages import ActionDone

SCOPES = (("This position", "position"), ("This client", "client"), ("Whole scope", "all"))
# Fixed widths: auto-sized columns grew when the legs landed, and the header line stayed
# painted at the widths it had before (about one preview in two).  With widths that do not
# depend on the data the header never changes, so it cannot go stale; they fit the dialog.
LEG_COLUMNS = (("Client", 8), ("Exch", 4), ("Symbol", 14), ("Prod", 4), ("Side", 4), ("Qty", 7), ("Outcome", 28))


class SquareOffScreen(ModalScreen[object]):
    BINDINGS = [
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

    def compose(self) -> ComposeResult:
        scope = "position" if self.position else ("client" if self.client_id else "all")
        with Vertical(classes="dialog", id="squareoff-box"):
            yield Static("SQUARE OFF", id="squareoff-title")
            with Horizontal(classes="row"):
                yield Select(SCOPES, value=scope, allow_blank=False, id="so-scope")
                yield Select([(c, c) for c in self.clients], value=self.client_id if self.client_id in self.clients
                             else Select.BLANK, id="so-client", prompt="client")
            yield Static("", id="so-what")
            table = DataTable(id="so-legs", cursor_type="row")
            for label, width in LEG_COLUMNS:
                table.add_column(label, width=width)
            yield table
            yield Static("", id="so-status")
            with Horizontal(classes="buttons"):
                yield Button("Confirm (y)", id="so-go", variant="error", disabled=True)
                yield Button("Close (Esc)", id="so-close")

    def on_mount(self) -> None:
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
    def refresh_preview(self) -> None:
        scope = self.scope()
        self.preview = None
        self.query_one("#so-go", Button).disabled = True
        if "client_id" in scope and scope["client_id"] is None:
            self.query_one("#so-status", Static).update("choose a client")
            return
        self.query_one("#so-what", Static).update(f"Flatten {self.describe(scope)}; open orders in it are cancelled.")
        self.query_one("#so-status", Static).update("previewing…")
        self.busy = True
        self.asked += 1
        self.asked_scope = scope
        self.app.run_trade(lambda s: s.squareoff(dry_run=True, **scope), reply_to=self, tag=self.asked)

    def on_action_done(self, msg: ActionDone) -> None:
        if msg.tag != self.asked:
            return  # an answer to a scope the dealer has since changed
        self.busy = False
        res = msg.result
        status = self.query_one("#so-status", Static)
        if res is None:
            status.update(msg.summary)
            return
        table = self.query_one("#so-legs", DataTable)
        table.clear()
        for leg in res.legs:
            table.add_row(leg.get("client_id"), leg.get("exchange"), leg.get("symbol"), leg.get("product"),
                          leg.get("side"), str(leg.get("quantity")),
                          leg.get("outcome") + (f": {leg['reason']}" if leg.get("reason") else ""))
        if res.dry_run:
            self.preview, self.preview_scope = res, self.asked_scope
            cancels = len(res.cancels)
            if not res.legs and not cancels:
                status.update("Nothing to square off in this scope.")
                return
            status.update(f"{len(res.legs)} leg(s) and {cancels} open order(s) to cancel, in {res.mode}. "
                          "Press y to confirm.")
            self.query_one("#so-go", Button).disabled = False
        else:
            self.result = res
            self.query_one("#so-go", Button).display = False  # done: only Close is left
            status.update(f"{msg.summary}  (Esc to close)")
            self.app.notify(msg.summary, title="Square-off", severity="information" if not res.rejected else "error")

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
