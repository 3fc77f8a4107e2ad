"""Order entry (F1 buy, F2 sell) and modify (Shift+F2): every field of the contract,
checked as the dealer types against the local reference data (lot size, tick size,
band, freeze quantity, required fields) with the order-shape rules main and the backup
desk apply (contract.ordershape: one definition, neutral wording), then sent through
the service.  The outcome (sent,
journaled, or rejected with the reason) stays on the form when it is a rejection.

Stale prices (issue 13): the hint shows the freshest price the desk saw (a tick, else the
reference data's) and, once the stream is down, its age ("LTP 1,520.35 · 4 m old", redrawn
each second).  An order sent while that price is stale asks first, naming the age.  A MARKET
order that would be journaled (BACKUP, RECOVERING) is never journaled bare: it becomes a LIMIT
at the protection price (contract.protection, the [rms] rule: ``limit_pct`` through the last
price, or the band's edge), and the confirmation says so.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import ClassVar, Literal, overload

from textual import getters, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from console.tui.app import LifeboatApp
from console.tui.messages import ActionDone
from console.tui.prices import JOURNALED_MODES, prices_stale
from console.tui.screens.confirm import ConfirmScreen
from console.tui.widgets.panels import price_text
from contract import ordershape
from contract.protection import protected_price
from contract.wire import OrderType, Side

EXCHANGES = ("NSE", "BSE", "NFO")
PRODUCTS = ("MIS", "NRML", "CNC")
TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
VALIDITIES = ("DAY", "IOC")


def _opts(values):
    return [(v, v) for v in values]


class Invalid(Exception):
    pass


@overload
def _int(text: str, what: str, *, required: Literal[True]) -> int: ...
@overload
def _int(text: str, what: str, *, required: bool) -> int | None: ...
def _int(text: str, what: str, *, required: bool) -> int | None:
    text = text.strip()
    if not text:
        if required:
            raise Invalid(f"{what} is required")
        return None
    try:
        return int(text)
    except ValueError:
        raise Invalid(f"{what} must be a whole number, not {text!r}") from None


def _price(text: str, what: str) -> Decimal | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Invalid(f"{what} must be a number, not {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise Invalid(f"{what} must be greater than zero")
    return value


def build_ticket(fields: dict, instruments: dict, clients: list[str]):
    """(ticket, validity, disclosed) from the form's text, or raise Invalid with one sentence."""
    from console.service import OrderTicket

    client = fields["client"].strip().upper()
    if not client:
        raise Invalid("client is required")
    if clients and client not in clients:
        raise Invalid(f"client {client} is not in your scope")
    exch, symbol = fields["exchange"], fields["symbol"].strip().upper()
    if not symbol:
        raise Invalid("symbol is required")
    inst = instruments.get((exch, symbol))
    if inst is None:
        raise Invalid(f"no instrument {symbol} on {exch} in the local reference data")
    qty = _int(fields["quantity"], "quantity", required=True)
    disclosed = _int(fields["disclosed"], "disclosed quantity", required=False)
    ticket = OrderTicket(
        client_id=client,
        exchange=exch,
        symbol=symbol,
        side=Side(fields["side"]),
        quantity=qty,
        product=fields["product"],
        order_type=OrderType(fields["order_type"]),
        price=_price(fields["price"], "price"),
        trigger_price=_price(fields["trigger"], "trigger price"),
    )
    try:
        ordershape.check(
            ordershape.Shape(
                ticket.exchange,
                ticket.symbol,
                ticket.side,
                ticket.quantity,
                ticket.product,
                ticket.order_type,
                ticket.price,
                ticket.trigger_price,
            ),
            inst,
        )
    except ordershape.Reject as exc:
        raise Invalid(exc.message) from None
    if disclosed is not None and not 0 <= disclosed <= qty:
        raise Invalid(f"disclosed quantity must be between 0 and the quantity {qty}")
    return ticket, fields["validity"], disclosed, inst


def protect(ticket, inst, last_price, settings: dict):
    """A MARKET order to be journaled, as the LIMIT it is journaled as: the protection price of
    the [rms] rule from ``last_price`` (``market``, no bound, is not allowed for a journaled
    order: the band's edge then).  Returns (ticket, how the price was set)."""
    rule = settings.get("squareoff_protection") or "limit_pct"
    if rule not in ("limit_pct", "band_edge"):
        rule = "band_edge"
    pct = float(settings.get("protection_percent") or 2.0)
    side = str(getattr(ticket.side, "value", ticket.side))
    price = protected_price(
        side,
        Decimal(last_price) if last_price is not None else None,
        tick=Decimal(inst.tick_size),
        lower_band=Decimal(inst.lower_band),
        upper_band=Decimal(inst.upper_band),
        rule=rule,
        pct=pct,
    )
    assert price is not None  # limit_pct and band_edge always give a price
    how = (
        f"{pct:g}% through the last price"
        if rule == "limit_pct" and last_price is not None and last_price > 0
        else "at the price band's edge"
    )
    return replace(ticket, order_type=OrderType.LIMIT, price=price), how


class OrderEntryScreen(ModalScreen[object]):
    app = getters.app(LifeboatApp)  # typed: the console's own app
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="order.close"),
        Binding("ctrl+s", "submit", "Submit", id="order.submit", priority=True),
    ]

    def __init__(self, side: str, defaults: dict, book) -> None:
        super().__init__()
        self.side = side
        self.defaults = defaults
        self.book = book  # None: the desk is still loading it; book_ready() brings it
        self.sending = False

    def book_ready(self, book, defaults: dict) -> None:
        """The desk's book arrived after the form opened (F1 right after login): check
        against it now, and fill the fields the dealer has not typed in."""
        self.book = book
        for name, key in (("client", "client_id"), ("symbol", "symbol")):
            field = self.query_one(f"#f-{name}", Input)
            if not field.value and defaults.get(key):
                field.value = defaults[key]
        self.validate()

    def compose(self) -> ComposeResult:
        d = self.defaults
        with Vertical(classes="dialog", id="order-box"):
            yield Static(f"{self.side} ORDER", id="order-title", classes=f"side-{self.side.lower()}")
            with Grid(id="order-grid"):
                yield Label("Client")
                yield Input(d.get("client_id", ""), id="f-client")
                yield Label("Exchange")
                yield Select(
                    _opts(EXCHANGES), value=d.get("exchange", "NSE"), allow_blank=False, id="f-exchange"
                )
                yield Label("Symbol")
                yield Input(d.get("symbol", ""), id="f-symbol")
                yield Label("Side")
                yield Select(_opts(("BUY", "SELL")), value=self.side, allow_blank=False, id="f-side")
                yield Label("Quantity")
                yield Input("", id="f-quantity", type="integer")
                yield Label("Product")
                yield Select(
                    _opts(PRODUCTS), value=d.get("product", "MIS"), allow_blank=False, id="f-product"
                )
                yield Label("Order type")
                yield Select(_opts(TYPES), value="MARKET", allow_blank=False, id="f-order_type")
                yield Label("Price")
                yield Input("", id="f-price")
                yield Label("Trigger price")
                yield Input("", id="f-trigger")
                yield Label("Validity")
                yield Select(_opts(VALIDITIES), value="DAY", allow_blank=False, id="f-validity")
                yield Label("Disclosed qty")
                yield Input("", id="f-disclosed", type="integer")
            yield Static("", id="order-hint")
            yield Static("", id="order-error")
            with Horizontal(classes="buttons"):
                yield Button(
                    f"{self.side} (Ctrl+S)",
                    id="order-go",
                    variant="success" if self.side == "BUY" else "error",
                )
                yield Button("Close (Esc)", id="order-close")

    def on_mount(self) -> None:
        self.query_one("#f-quantity", Input).focus()
        self.validate()
        self.set_interval(1.0, self._show_hint, name="order-price-age")

    def quote(self, inst) -> tuple[Decimal | None, str | None]:
        """(the freshest price of ``inst`` the desk saw, its age text when prices are stale)."""
        app = self.app
        key = (str(getattr(inst.exchange, "value", inst.exchange)), inst.symbol)
        price, _at = app.prices.quote(key, inst.last_price)
        if not prices_stale(app.live.snapshot(), app.session.mode):
            return price, None
        return price, app.prices.age(key, app.clock())

    def _instrument(self):
        if self.book is None:
            return None
        f = self.fields()
        return self.book.instruments.get((f["exchange"], f["symbol"].strip().upper()))

    def _show_hint(self) -> None:
        hint = self.query_one("#order-hint", Static)
        inst = self._instrument()
        if inst is None:
            hint.update("")
            return
        p = lambda v: price_text(v, inst.tick_size, grouped=False)  # noqa: E731
        ltp, age = self.quote(inst)
        shown = p(ltp) if ltp is not None else "-"
        hint.update(
            f"{inst.symbol}: LTP {shown}{f' · {age}' if age else ''}  lot {inst.lot_size}  "
            f"tick {p(inst.tick_size)}  band {p(inst.lower_band)}-{p(inst.upper_band)}  "
            f"freeze {inst.freeze_quantity}"
        )

    def fields(self) -> dict:
        q = self._field
        return {
            "client": q("client").value,
            "exchange": q("exchange").value,
            "symbol": q("symbol").value,
            "side": q("side").value,
            "quantity": q("quantity").value,
            "product": q("product").value,
            "order_type": q("order_type").value,
            "price": q("price").value,
            "trigger": q("trigger").value,
            "validity": q("validity").value,
            "disclosed": q("disclosed").value,
        }

    def _field(self, name: str) -> Input | Select:
        field = self.query_one(f"#f-{name}")
        assert isinstance(field, (Input, Select)), field
        return field

    def set_fields(self, **values) -> None:
        """Fill the form (tests, and the palette's pre-filled orders)."""
        for name, value in values.items():
            self._field(name).value = value

    @on(Input.Changed)
    @on(Select.Changed)
    def validate(self) -> bool:
        err = self.query_one("#order-error", Static)
        f = self.fields()
        self._show_hint()
        if self.book is None:
            err.update("loading the book: the form checks and sends once it is in")
            err.set_classes("invalid")
            return False
        try:
            build_ticket(f, self.book.instruments, self.book.clients)
        except Invalid as exc:
            err.update(str(exc))
            err.set_classes("invalid")
            return False
        err.update("ready")
        err.set_classes("valid")
        return True

    @on(Input.Submitted)
    @on(Button.Pressed, "#order-go")
    def action_submit(self) -> None:
        if self.sending:
            return
        if not self.validate():
            return
        ticket, validity, disclosed, inst = build_ticket(
            self.fields(), self.book.instruments, self.book.clients
        )
        ltp, age = self.quote(inst)
        journaled = self.app.session.mode in JOURNALED_MODES
        question = []
        if ticket.order_type == OrderType.MARKET and journaled:
            ticket, how = protect(ticket, inst, ltp, self.app.rms_settings)
            question.append(
                f"A MARKET order is journaled with a protection price in {self.app.session.mode}: "
                f"LIMIT {price_text(ticket.price, inst.tick_size)} ({how})."
            )
        if age is not None:
            shown = price_text(ltp, inst.tick_size) if ltp is not None else "unknown"
            question.insert(
                0,
                f"STALE PRICE: the last price of {inst.symbol} is {age} (LTP {shown}; the price "
                f"stream is down).",
            )
        if not question:
            self._send(ticket, validity, disclosed)
            return
        what = f"{ticket.side.value} {ticket.quantity} {ticket.symbol} {ticket.order_type.value}"
        if ticket.price is not None:
            what += f" {price_text(ticket.price, inst.tick_size)}"
        verb = "Journal" if journaled else "Send"
        question.append(f"{verb} {what} for {ticket.client_id}?")
        self.sending = True  # no second submit while the question is open

        def answered(yes: bool | None) -> None:
            self.sending = False
            if yes:
                self._send(ticket, validity, disclosed)
            else:
                self.query_one("#order-error", Static).update("not sent")

        self.app.push_screen(ConfirmScreen("\n".join(question)), answered)

    def _send(self, ticket, validity: str, disclosed: int | None) -> None:
        self.sending = True
        self.query_one("#order-error", Static).update("sending…")
        self.app.run_trade(
            lambda s: s.place(ticket, validity=validity, disclosed_quantity=disclosed), reply_to=self
        )

    def on_action_done(self, msg: ActionDone) -> None:
        self.sending = False
        ok = msg.result is not None and not msg.result.rejected
        if ok:
            self.app.notify(msg.summary, title="Order")
            self.dismiss(msg.result)
            return
        err = self.query_one("#order-error", Static)
        err.update(msg.summary)
        err.set_classes("invalid")

    @on(Button.Pressed, "#order-close")
    def action_close(self) -> None:
        self.dismiss(None)


class ModifyScreen(ModalScreen[object]):
    app = getters.app(LifeboatApp)  # typed: the console's own app
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="modify.close"),
        Binding("ctrl+s", "submit", "Submit", id="modify.submit", priority=True),
    ]

    def __init__(self, order: dict) -> None:
        super().__init__()
        self.order = order

    def compose(self) -> ComposeResult:
        o = self.order
        with Vertical(classes="dialog"):
            yield Static(
                f"MODIFY {o['order_id']}: {o['side']} {o['symbol']} for {o['client_id']} ({o['order_type']})"
            )
            yield Label("Quantity")
            yield Input(str(o["quantity"]), id="m-quantity", type="integer")
            yield Label("Price")
            yield Input(self._price(o.get("price")), id="m-price")
            yield Label("Trigger price")
            yield Input(self._price(o.get("trigger_price")), id="m-trigger")
            yield Static("", id="modify-error")
            with Horizontal(classes="buttons"):
                yield Button("Modify (Ctrl+S)", id="modify-go", variant="primary")
                yield Button("Close (Esc)", id="modify-close")

    def _price(self, value) -> str:
        """A price to edit, at the instrument's tick precision (the store keeps 4 places)."""
        return "" if value is None else price_text(value, self.order.get("tick"), grouped=False)

    @on(Input.Submitted)
    @on(Button.Pressed, "#modify-go")
    def action_submit(self) -> None:
        err = self.query_one("#modify-error", Static)
        try:
            qty = _int(self.query_one("#m-quantity", Input).value, "quantity", required=True)
            price = _price(self.query_one("#m-price", Input).value, "price")
            trigger = _price(self.query_one("#m-trigger", Input).value, "trigger price")
        except Invalid as exc:
            err.update(str(exc))
            return
        o = self.order
        change = {
            "quantity": qty if qty != o["quantity"] else None,
            "price": price if price != o.get("price") else None,
            "trigger_price": trigger if trigger != o.get("trigger_price") else None,
        }
        if all(v is None for v in change.values()):
            err.update("nothing changed")
            return
        err.update("sending…")
        self.app.run_trade(lambda s: s.modify(order_id=o["order_id"], **change), reply_to=self)

    def on_action_done(self, msg: ActionDone) -> None:
        if msg.result is not None and not msg.result.rejected:
            self.app.notify(msg.summary, title="Modify")
            self.dismiss(msg.result)
        else:
            self.query_one("#modify-error", Static).update(msg.summary)

    @on(Button.Pressed, "#modify-close")
    def action_close(self) -> None:
        self.dismiss(None)
