"""The desk: mode banner, the dealer's panels, the status bar.

Panels (one visible at a time, switched by the terminal keys): market watch (F4), net
positions with MTM (Alt+F6), order book (F3), trade book (F8), journal (F9, what backup
mode wrote).  Live data arrives through the Feed, drained a few times a second and
staged into the grids, which repaint only the rows that changed.  The panel title counts
the rows on screen, so it is set whenever rows land, not only when the panel is chosen.
While RECOVERING the banner shows the running replay's progress ("12/40"), polled a few
times a second.  Ctrl+R (key ``replay``) opens the replay and reconciliation screen.

Risk (issue 13): the RMS panel above the status bar counts down to each segment's intraday
cut-off once a second and lists the clients nearest their MTM-loss limit (F7, key
``view.risk``, expands it; console/tui/widgets/rms.py); the risk status behind it is read
with the status sample, every few seconds, in its worker.  A client in square-off mode is
marked on its position rows.  Once the stream is down (console/tui/prices.py), every LTP
on the market watch and the net positions carries its age, redrawn once a second.
"""

from __future__ import annotations

import gc
import inspect
import time
from datetime import datetime
from decimal import Decimal
from typing import ClassVar, cast

from rich.style import Style
from textual import getters, on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Static

from console.tui import keymap
from console.tui.app import LifeboatApp
from console.tui.feed import position_key
from console.tui.messages import (
    Book,
    BookLoaded,
    JournalLoaded,
    ModeChanged,
    ReplayProgress,
    RiskNoticed,
    RmsSampled,
    StatusSampled,
)
from console.tui.prices import AGE_WIDTH, prices_stale
from console.tui.widgets import panels
from console.tui.widgets.banner import ModeBanner
from console.tui.widgets.grid import BookGrid, Column
from console.tui.widgets.keybar import KeyBar
from console.tui.widgets.rms import RmsPanel
from console.tui.widgets.status_bar import StatusBar
from contract import money as pnl
from contract.enums import OPEN_STATUSES, value_of

PANELS = {
    "watch": ("Market watch", panels.WATCH),
    "positions": ("Net positions", panels.POSITIONS),
    "orders": ("Order book", panels.ORDERS),
    "trades": ("Trade book", panels.TRADES),
    "journal": ("Journal", panels.JOURNAL),
}
OPEN = frozenset(str(value_of(s)) for s in OPEN_STATUSES)  # as the rows show them
# A square-off journaled and not yet on main, on its position's row: "SQ 50 pending" (the
# quantity it was journaled for; "sent": sent, main's answer not yet read back).
SQUAREOFF_COLUMN = Column(
    "squareoff",
    "Square-off",
    10,
    tone=lambda _v: Style(color="black", bgcolor="yellow"),
    fit=True,
    max_width=24,
)


def with_squareoff_column(cols: list) -> list:
    """The positions' columns with the square-off marker right after the net quantity."""
    i = next((n + 1 for n, c in enumerate(cols) if c.key == "net_quantity"), len(cols))
    return [*cols[:i], SQUAREOFF_COLUMN, *cols[i:]]


SQUAREOFF_MODE_MARK = "SQ-OFF MODE"  # the client breached its MTM-loss limit: reduce-only


def squareoff_marker(pending: dict | None, squareoff_mode: bool = False) -> str | None:
    """The position's square-off column: a square-off journaled for it first, else the client's
    square-off mode (reduce-only after an MTM-loss breach)."""
    if pending:
        return f"SQ {pending.get('quantity') or '?'} {pending.get('state')}"
    return SQUAREOFF_MODE_MARK if squareoff_mode else None


class PendingSquareOffs(Message):
    """Square-offs journaled and not yet on main, by position key (Service.pending_squareoffs)."""

    def __init__(self, pending: dict) -> None:
        super().__init__()
        self.pending = pending


class DeskScreen(Screen):
    app = getters.app(LifeboatApp)  # typed: the console's own app
    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings(keymap.DESK_KEYS)
    DRAIN_FPS = 20  # the frame clock for live data: stage what arrived, repaint the rows it touched
    TOTAL_EVERY = 0.5  # seconds between sums of the positions' total line while prices move
    PROGRESS_EVERY = 0.25  # seconds between looks at a running replay's progress (RECOVERING only)
    RMS_EVERY = 3.0  # seconds between reads of the risk status (done by the status worker when due)
    AUTO_FOCUS = None  # action_show focuses the visible panel (the default would pick the hidden watch grid)
    GRID = BookGrid  # the bench swaps in the stock DataTable (bench/bench_tui.py) for its baseline

    def __init__(self) -> None:
        super().__init__()
        self.panel = "positions"
        self.squareoffs: dict = {}  # position key -> the square-off journaled for it, not yet on main
        self.book: Book | None = None
        self._resnapshots_seen = 0
        self.status: dict = {}
        self._title_shown: tuple[str, int] | None = None
        self._fills: dict[tuple, list] = {}  # the day's fills by position key (buy/sell averages)
        self._trade_ids: set[str] = set()
        self._positions: dict[tuple, object] = {}  # the newest wire position by key
        self._total_due = False
        self.rms: dict | None = None  # the last risk status (Service.rms_status)
        self.squareoff_mode: set[str] = set()  # clients in square-off mode (reduce-only), from it
        self.prices_stale = False  # the desk's LTPs carry their age
        self._rms_at: float | None = None  # monotonic time of the last risk read (None: due now)
        self._age_now: datetime | None = None
        self._held_ticks: dict = {}  # ticks seen while a dialog was over the desk, staged once on top

    def compose(self) -> ComposeResult:
        yield ModeBanner(id="banner")
        yield Static("", id="panel-title")
        with ContentSwitcher(initial=f"grid-{self.panel}", id="panels"):
            for name, (_title, cols) in PANELS.items():
                if name == "positions":  # LTP and MTM follow the ticks as live quotes
                    yield self.GRID(
                        with_squareoff_column(cols),
                        id=f"grid-{name}",
                        quote_of=panels.position_quote,
                        with_quote=panels.position_with_quote,
                    )
                else:
                    yield self.GRID(cols, id=f"grid-{name}")
        yield RmsPanel(id="rms")
        yield StatusBar(self.app.clock, id="status")
        yield KeyBar(id="keybar")

    def grid(self, name: str) -> BookGrid:
        # a cast, not a typed query: the bench swaps in a grid that is not a BookGrid (GRID)
        return cast(BookGrid, self.query_one(f"#grid-{name}"))

    def on_mount(self) -> None:
        self.action_show(self.panel)
        banner = self.query_one(ModeBanner)
        banner.mode = self.app.session.mode
        self.load_book()
        self.set_interval(1 / self.DRAIN_FPS, self.drain, name="desk-drain")
        self.set_interval(self.TOTAL_EVERY, self._total_tick, name="desk-positions-total")
        self.set_interval(self.PROGRESS_EVERY, self._look_at_replay, name="desk-replay-progress")
        self.set_interval(1.0, self.each_second, name="desk-each-second")
        self.sample_status()
        self.each_second()

    def on_unmount(self) -> None:
        self.app.stop_runtime()  # the runtime's thread must end with the desk, even on an error

    # ------------------------------------------------------------------ data

    @work(thread=True, exclusive=True, group="desk-book", exit_on_error=False)
    def load_book(self) -> None:
        self.post_message(BookLoaded(self.app.session.local_book()))

    def _tick(self, exchange, symbol):
        inst = self.book.instruments.get((value_of(exchange), symbol)) if self.book else None
        return inst.tick_size if inst is not None else None

    def _position_row(self, p) -> dict:
        key = position_key(p)
        self._positions[key] = p
        row = panels.position_row(p, self._tick(p.exchange, p.symbol), self._fills.get(key))
        row["squareoff"] = squareoff_marker(self.squareoffs.get(key), p.client_id in self.squareoff_mode)
        return row

    def on_book_loaded(self, msg: BookLoaded) -> None:
        book = self.book = msg.book
        self._rms_at = None  # a new book: the next status sample reads the risk status again
        self._fills = panels.fill_totals(book.trades)
        self._trade_ids = {t.trade_id for t in book.trades}
        self._positions = {}
        rows = []
        for p in book.positions:
            key = position_key(p)
            rows.append((key, self._position_row(p)))
        self.grid("positions").set_rows(rows)
        self.grid("orders").set_rows(
            (o.order_id, panels.order_row(o, self._tick(o.exchange, o.symbol))) for o in book.orders
        )
        self.grid("trades").set_rows(
            (t.trade_id, panels.trade_row(t, self._tick(t.exchange, t.symbol))) for t in book.trades
        )
        self._fill_watch()
        self._show_total()
        self.show_title()
        self._forms_get_the_book()
        # A full collection walks every object: with a 5,000-row book that was a ~300 ms pause
        # about once every few seconds under streaming (bench/bench_tui.py).  The book is
        # long-lived, so move it out of the collector's sight; a re-snapshot re-freezes.
        gc.unfreeze()
        gc.freeze()

    def _forms_get_the_book(self) -> None:
        """An order form opened before the book was in (F1 right after login) gets it now."""
        from console.tui.screens.order_entry import OrderEntryScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, OrderEntryScreen) and screen.book is None:
                screen.book_ready(self.book, self._ticket_defaults())

    def _fill_watch(self) -> None:
        book = self.book
        if book is None:
            return
        if not self.app.watch_symbols:  # none configured: the book's own instruments, then the dealer's edits
            self.app.watch_symbols = default_watch(book)
        wanted = self.app.watch_symbols
        rows = []
        for item in wanted:
            exch, _, sym = item.partition(":")
            inst = book.instruments.get((exch, sym))
            if inst is not None:
                rows.append(((exch, sym), panels.watch_row(inst)))
        self.grid("watch").set_rows(rows)

    def drain(self) -> None:
        if self.app.screen is not self:
            # a dialog is over the desk: the feed keeps coalescing (latest value per key, every
            # fill), and the desk draws it all when it is on top again, not under the dialog;
            # it still notes when it saw each price (an order form shows it, with its age)
            held = self.app.feed.drain_ticks()
            if held:
                self.app.prices.saw(held, self.app.clock())
                self._held_ticks.update(held)
            return
        ticks, positions, orders, trades = self.app.feed.drain()
        if ticks:
            self.app.prices.saw(ticks, self.app.clock())
        if self._held_ticks:
            ticks, self._held_ticks = {**self._held_ticks, **ticks}, {}
        if not (ticks or positions or orders or trades):
            return
        watch, pos = self.grid("watch"), self.grid("positions")
        touched = set()
        for t in trades:  # fills first: the positions they move show their new buy/sell averages
            if t.trade_id not in self._trade_ids:
                self._trade_ids.add(t.trade_id)
                touched.add(panels.add_fill(self._fills, t))
        for key in touched - positions.keys():
            if key in self._positions:
                pos.stage(key, self._position_row(self._positions[key]))
        for key, p in positions.items():
            pos.stage(key, self._position_row(p))
        for (exch, sym), ltp in ticks.items():
            if self.book is not None and watch.row((exch, sym)) is not None:
                inst = self.book.instruments.get((exch, sym))
                if inst is not None:
                    watch.stage((exch, sym), panels.watch_row(inst, ltp))
        pos.set_quotes(ticks)
        og = self.grid("orders")
        for oid, o in orders.items():
            og.stage(oid, panels.order_row(o, self._tick(o.exchange, o.symbol)))
        tg = self.grid("trades")
        for t in trades:
            tg.stage(t.trade_id, panels.trade_row(t, self._tick(t.exchange, t.symbol)))
        for g in (watch, pos, og, tg):
            g.flush()
        if positions or trades or ticks:
            self._total_due = True  # drawn by the total's own timer: a sum over every row, so not every frame
        self.show_title()

    def _total_tick(self) -> None:
        if self._total_due:
            self._total_due = False
            self._show_total()

    def _show_total(self) -> None:
        """The positions' total line: realised, unrealised and MTM over every row at the
        prices shown (live quotes applied: unrealised at the quote, as the row shows it; MTM is
        realised plus unrealised, row by row and so in total).  From the rows' own values, not
        the rows as shown: every half second while prices move, over 5,000 rows, on the
        screen's loop."""
        g = self.grid("positions")
        if not hasattr(g, "set_summary"):  # the bench's stock-DataTable baseline has no total line
            return
        if not g.row_count:
            g.set_summary(None)
            return
        realised = unrealised = Decimal(0)
        for values, ltp in g.rows_and_quotes():
            realised += Decimal(values["realised_pnl"])
            if ltp is None:
                unrealised += Decimal(values["unrealised_pnl"])
            else:
                unrealised += pnl.unrealised(values["net_quantity"], values["average_price"], ltp)
        g.set_summary(
            {
                "client_id": "Total",
                "realised_pnl": realised,
                "unrealised_pnl": unrealised,
                "mtm": realised + unrealised,
            }
        )

    @work(thread=True, exclusive=True, group="desk-status", exit_on_error=False)
    def sample_status(self) -> None:
        try:
            if self._rms_at is None or time.monotonic() - self._rms_at >= self.RMS_EVERY:
                self._sample_rms()  # first: the desk's first full picture has the risk panel too
            st = self.app.live.call_blocking(self.app.session.sample_status)
        finally:
            self.app.call_from_thread(self._next_sample)
        self.post_message(StatusSampled(st))
        self.post_message(PendingSquareOffs(self.app.session.service.pending_squareoffs()))
        if st.get("mode") != "ONLINE" or self.panel == "journal":
            self.post_message(JournalLoaded(self.app.session.service.journal_entries(limit=500)))

    def _sample_rms(self) -> None:
        """The risk status (in the status worker's thread, never on the screen's loop): each
        segment's cut-off and what it will do, each client's MTM against its limit.  Read at the
        app's clock; a coroutine (a service that asks main) runs on the live session's loop."""
        from console.service import ServiceError
        from console.tui.outcome import said

        self._rms_at = time.monotonic()
        try:
            res = self.app.service.rms_status(now=self.app.clock())
            if inspect.isawaitable(res):
                pending = res
                res = self.app.live.call_blocking(lambda: pending)
            self.post_message(RmsSampled(res))
        except ServiceError as exc:
            self.post_message(RmsSampled(None, said(exc)))
        except Exception as exc:  # noqa: BLE001 - the panel says why; the status sample goes on
            self.post_message(RmsSampled(None, f"{type(exc).__name__}: {exc}"))

    def on_rms_sampled(self, msg: RmsSampled) -> None:
        self.query_one(RmsPanel).set_sample(msg.status, msg.error)
        if msg.status is None:
            return
        self.rms = msg.status
        self.app.rms_settings = dict(msg.status.get("settings") or {})
        sq = {c["client_id"] for c in msg.status.get("clients") or [] if c.get("mode") == "squareoff"}
        if sq != self.squareoff_mode:
            changed, self.squareoff_mode = sq ^ self.squareoff_mode, sq
            g = self.grid("positions")
            touched = False
            for key in g.keys():  # noqa: SIM118 - BookGrid.keys(): a widget, not a dict
                client = cast(tuple, key)[0]  # a position key: (client, exchange, symbol, product)
                if client in changed:
                    g.stage(key, {"squareoff": squareoff_marker(self.squareoffs.get(key), client in sq)})
                    touched = True
            if touched:
                g.flush()

    def risk_noticed(self, msg: RiskNoticed) -> None:
        """A risk notice (the app toasted it): kept on the panel; the risk status is read again
        at once (a cut-off ran, a client breached its limit), with the status and the journal."""
        self.query_one(RmsPanel).add_notice(self.app.clock(), msg.severity, msg.message)
        self._rms_at = None
        self.sample_status()

    # ------------------------------------------------------------------ once a second: countdown, price ages

    def each_second(self) -> None:
        """The cut-off countdown (the live session's rms_upcoming: arithmetic, no store read) and,
        while the stream is down, the age every LTP carries."""
        app = self.app
        now = app.clock()
        live = app.live.snapshot()
        self.query_one(RmsPanel).tick(
            now,
            app.live.rms_upcoming(),
            hosted=live.hosted and live.running,
            problem=app.live.rms_problem,
        )
        self.show_price_ages(now, live)

    def show_price_ages(self, now: datetime | None = None, live=None) -> None:
        app = self.app
        live = live if live is not None else app.live.snapshot()
        stale = prices_stale(live, app.session.mode)
        self._age_now = now or app.clock()
        self.prices_stale = stale
        for name in ("watch", "positions"):
            g = self.grid(name)
            if hasattr(g, "show_ages"):  # the bench's stock-DataTable baseline has none
                g.show_ages(self._price_age if stale else None, AGE_WIDTH)

    def _price_age(self, row: dict) -> str | None:
        if self._age_now is None:
            return None
        return self.app.prices.age((row.get("exchange"), row.get("symbol")), self._age_now)

    def action_toggle_risk(self) -> None:
        panel = self.query_one(RmsPanel)
        panel.expanded = not panel.expanded

    def _next_sample(self) -> None:
        if self.is_attached:
            self.set_timer(self.app.status_every, self.sample_status, name="desk-status-next")

    def on_status_sampled(self, msg: StatusSampled) -> None:
        self.status = msg.status
        bod = msg.status.get("last_bod") or {}
        if bod.get("at"):  # the reference prices (never ticked here) are as old as the snapshot
            self.app.prices.base_at = datetime.fromisoformat(bod["at"])
        if self.prices_stale or msg.status.get("mode") in ("BACKUP", "UNAVAILABLE"):
            self.show_price_ages()
        self.query_one(StatusBar).show(msg.status)
        banner = self.query_one(ModeBanner)
        if banner.mode != "RECOVERING":  # the figure itself comes from the progress poll alone
            banner.progress = ""
        if banner.mode in ("BACKUP", "UNAVAILABLE") and msg.status.get("mode") in ("BACKUP", "UNAVAILABLE"):
            sites = msg.status.get("sites") or {}
            if msg.status["mode"] == "BACKUP" and (sites.get("split_brain") or sites.get("fenced")):
                banner.reason = f"ALARM {sites.get('reason', 'no site may take actions')}"  # DR tier alarm
            else:
                banner.reason = msg.status.get("reason", "")
            banner.mode = msg.status["mode"]  # BACKUP shown only where a backup action can be accepted
        self.show_title()
        rs = (msg.status.get("runtime") or {}).get("resnapshots", 0)
        if rs != self._resnapshots_seen:
            self._resnapshots_seen = rs
            self.load_book()

    @on(PendingSquareOffs)
    def _pending_squareoffs(self, msg: PendingSquareOffs) -> None:
        """Mark the positions with a square-off journaled and not yet on main (and unmark the rest)."""
        before, self.squareoffs = self.squareoffs, msg.pending
        g = self.grid("positions")
        changed = False
        for key in before.keys() | msg.pending.keys():
            sq = key[0] in self.squareoff_mode
            text = squareoff_marker(msg.pending.get(key), sq)
            if text != squareoff_marker(before.get(key), sq) and g.row(key) is not None:
                g.stage(key, {"squareoff": text})
                changed = True
        if changed:
            g.flush()

    def on_journal_loaded(self, msg: JournalLoaded) -> None:
        self.grid("journal").set_rows((e["seq"], panels.journal_row(e)) for e in msg.entries)
        self.show_title()

    @work(thread=True, exclusive=True, group="desk-journal", exit_on_error=False)
    def load_journal(self) -> None:
        self.post_message(JournalLoaded(self.app.session.service.journal_entries(limit=500)))

    # ------------------------------------------------------------------ replay progress (RECOVERING)

    def _look_at_replay(self) -> None:
        """Timer: while RECOVERING with a pass running, ask for its progress (off the loop:
        the total needs the journal's backlog); once it ends, clear the banner's figure."""
        banner = self.query_one(ModeBanner)
        running = self.app.live.snapshot().replaying
        if banner.mode == "RECOVERING" and running:
            self.sample_replay_progress()
        elif banner.progress and (banner.mode != "RECOVERING" or not running):
            self.post_message(ReplayProgress(None))

    @work(thread=True, exclusive=True, group="desk-replay-progress", exit_on_error=False)
    def sample_replay_progress(self) -> None:
        self.post_message(ReplayProgress(self.app.session.replay_progress(self.app.live.snapshot())))

    def on_replay_progress(self, msg: ReplayProgress) -> None:
        banner = self.query_one(ModeBanner)
        if msg.progress and banner.mode != "RECOVERING":
            return  # a late sample: the replay is through (reconciling, or ONLINE already)
        banner.progress = msg.progress or ""
        if self.status:
            self.status["replay"] = msg.progress or "idle"
            self.query_one(StatusBar).show(self.status)

    def set_mode(self, msg: ModeChanged) -> None:
        banner = self.query_one(ModeBanner)
        live = self.app.live.snapshot()
        sites = live.sites or {}
        if msg.mode == "DR":  # which DR site (the status bar says since when)
            banner.reason = live.site_url
        elif msg.mode == "BACKUP" and (sites.get("split_brain") or sites.get("fenced")):
            banner.reason = f"ALARM {sites.get('reason', 'no site may take actions')}"
        elif banner.reason.startswith("ALARM"):
            banner.reason = ""
        banner.mode = msg.mode
        self.query_one(StatusBar).show(mode_since=msg.at)
        self.show_price_ages()  # BACKUP: every price carries its age from now on
        if msg.mode in ("BACKUP", "RECOVERING"):
            self.sample_status()
        if msg.mode == "RECOVERING":
            self._look_at_replay()
        else:
            self.query_one(ModeBanner).progress = ""  # the figure belongs to RECOVERING only

    # ------------------------------------------------------------------ keys

    def action_show(self, panel: str) -> None:
        self.panel = panel
        self.query_one(ContentSwitcher).current = f"grid-{panel}"
        self.show_title()
        self.grid(panel).focus()
        if panel == "journal":
            self.load_journal()

    def show_title(self) -> None:
        """The visible panel's name and row count; redrawn only when either changed."""
        title, _cols = PANELS[self.panel]
        shown = (self.panel, self.grid(self.panel).row_count)
        if shown != self._title_shown:
            self._title_shown = shown
            self.query_one("#panel-title", Static).update(f" {title}  ({shown[1]} rows)")

    def cursor_position(self) -> dict | None:
        g = self.grid("positions")
        return g.row(g.cursor_key) if g.cursor_key is not None else None

    def _ticket_defaults(self) -> dict:
        src = None
        if self.panel in ("positions", "orders", "watch"):
            g = self.grid(self.panel)
            src = g.row(g.cursor_key) if g.cursor_key is not None else None
        d = {}
        if src:
            d = {k: src[k] for k in ("client_id", "exchange", "symbol", "product") if k in src}
        if "client_id" not in d and self.book and self.book.clients:
            d["client_id"] = self.book.clients[0]
        return d

    def action_buy(self) -> None:
        self._order("BUY")

    def action_sell(self) -> None:
        self._order("SELL")

    def _order(self, side: str) -> None:
        """Open the form at once, even before the book is in: it fills in and checks once it is."""
        from console.tui.screens.order_entry import OrderEntryScreen

        self.app.push_screen(OrderEntryScreen(side, self._ticket_defaults(), self.book))

    def _cursor_order(self) -> dict | None:
        if self.panel != "orders":
            self.notify("Select an order in the order book (F3) first.", severity="warning")
            return None
        g = self.grid("orders")
        row = g.row(g.cursor_key) if g.cursor_key is not None else None
        if row is None or row["status"] not in OPEN:
            self.notify("Select an open order.", severity="warning")
            return None
        return row

    def action_modify(self) -> None:
        from console.tui.screens.order_entry import ModifyScreen

        row = self._cursor_order()
        if row is not None:
            self.app.push_screen(ModifyScreen(row))

    def action_cancel(self) -> None:
        from console.tui.screens.confirm import ConfirmScreen

        row = self._cursor_order()
        if row is None:
            return
        oid = row["order_id"]

        def done(yes: bool | None) -> None:
            if yes:
                self.app.run_trade(lambda s: s.cancel(order_id=oid), reply_to=self)

        self.app.push_screen(
            ConfirmScreen(
                f"Cancel order {oid}: {row['side']} {row['quantity']} {row['symbol']} for {row['client_id']}?"
            ),
            done,
        )

    def action_squareoff(self) -> None:
        from console.tui.screens.squareoff import SquareOffScreen

        pos = self.cursor_position() if self.panel == "positions" else None
        client = (pos or {}).get("client_id") or self._ticket_defaults().get("client_id")
        self.app.push_screen(
            SquareOffScreen(position=pos, client_id=client, clients=self.book.clients if self.book else []),
            self._after_squareoff,
        )

    def _after_squareoff(self, _result: object) -> None:
        self.sample_status()  # the marker of what was just journaled

    def action_killswitch(self) -> None:
        from console.tui.screens.confirm import ConfirmScreen

        def done(yes: bool | None) -> None:
            if yes:
                self.app.run_trade(lambda s: s.killswitch(), reply_to=self)

        self.app.push_screen(
            ConfirmScreen("KILL SWITCH: cancel every open order in your scope and block new exposure?"), done
        )

    def action_watch_add(self) -> None:
        from console.tui.screens.confirm import AskScreen

        def done(text: str | None) -> None:
            if not text:
                return
            item = text.strip().upper()
            if ":" not in item:
                item = f"NSE:{item}"
            exch, _, sym = item.partition(":")
            if self.book is None or (exch, sym) not in self.book.instruments:
                self.notify(f"No instrument {item} in the local reference data.", severity="error")
                return
            self.grid("watch").stage((exch, sym), panels.watch_row(self.book.instruments[(exch, sym)]))
            self.grid("watch").flush()
            self.app.watch_add(item)

        self.app.push_screen(AskScreen("Add to market watch (EXCHANGE:SYMBOL)", "NSE:INFY"), done)

    def action_watch_remove(self) -> None:
        g = self.grid("watch")
        if self.panel != "watch" or g.cursor_key is None:
            self.notify("Select a symbol in the market watch (F4) first.", severity="warning")
            return
        exch, sym = cast(tuple[str, str], g.cursor_key)
        g.stage(g.cursor_key, None)
        g.flush()
        self.app.watch_remove(f"{exch}:{sym}")

    def action_replay(self) -> None:
        from console.tui.screens.replay import ReplayScreen

        self.app.push_screen(ReplayScreen())

    def on_action_done(self, msg) -> None:
        ok = msg.result is not None and not msg.result.rejected
        self.notify(msg.summary, severity="information" if ok else "error", timeout=8)
        self.sample_status()

    def palette_commands(self):
        """What the command palette offers on the desk (the desk's keys, by name)."""
        for k in keymap.DESK_KEYS:
            yield k.description, k.action, f"key {k.key}"


def default_watch(book) -> list[str]:
    """The market watch when the config names none: the instruments of the dealer's own book
    (positions, then open orders), each once, by symbol; with an empty book, the first 40
    NSE instruments by symbol."""
    seen: dict[str, None] = {}
    for item in list(book.positions) + [o for o in book.orders if value_of(o.status) in OPEN]:
        exch = value_of(item.exchange)
        if (exch, item.symbol) in book.instruments:
            seen.setdefault(f"{exch}:{item.symbol}")
    if seen:
        return sorted(seen, key=lambda k: (k.partition(":")[2], k))
    return [f"{e}:{s}" for (e, s) in sorted(book.instruments, key=lambda k: (k[1], k[0])) if e == "NSE"][:40]
