"""Console speed: the desk with 5,000 net positions and 5,000 orders under ~1,000 updates/s.

What it measures, for our Line-API grid (BookGrid) and, in the same run, the stock
DataTable as the baseline (same desk, same drain path, DataTable.update_cell inside
app.batch_update()):

* key latency p50/p99: the console runs as a child process in a real pty (200x50); this
  process writes the key bytes (cursor down/up, ESC [ B / ESC [ A) to the pty master from
  its own thread every ~50 ms, as a terminal does, and the child timestamps the moment
  the key's handler (the grid's cursor action) runs.  Both sides use CLOCK_MONOTONIC, so
  latency = handler time - write time (parse + queue + event loop wait; paint excluded).
* frames/s: screen updates the child actually wrote to the terminal per second, and the
  p99 cost of one.
* event-loop stalls: a 10 ms ticker in the child; its worst lateness while the 5,000+5,000
  rows load, and its p99 under streaming.
* updates: a producer thread in the child feeds ticks (80%) and order events (20%) into the
  console's Feed with the same calls the runtime makes (Feed.ticks / Feed.events).

Usage: python bench/bench_tui.py [--quick] [--rows 5000] [--rate 1000] [--seconds 10]
The machine is shared: compare the two rows of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

KEYS = (b"\x1b[B", b"\x1b[A")  # down, up


# ============================================================================ child (the console)


def child(args) -> None:
    import asyncio
    from datetime import datetime
    from decimal import Decimal
    from types import SimpleNamespace

    from textual.widgets import DataTable

    from console.service import Service
    from console.tui.app import LifeboatApp
    from console.tui.config import ConsoleConfig
    from console.tui.messages import Book, BookLoaded
    from console.tui.screens.desk import DeskScreen
    from console.tui.session import Identity
    from contract import wire

    out = Path(args.out)
    n_rows, rate, seconds = args.rows, args.rate, args.seconds
    rng = random.Random(7)
    n_symbols = 200
    clients = [f"C{i:03d}" for i in range(max(1, n_rows // n_symbols))]
    symbols = [f"SYM{i:03d}" for i in range(n_symbols)]
    now = datetime.now(UTC)
    instruments = {
        ("NSE", s): SimpleNamespace(
            exchange=wire.Exchange.NSE,
            symbol=s,
            name=s,
            lot_size=1,
            tick_size=Decimal("0.05"),
            last_price=Decimal(100),
            lower_band=Decimal(80),
            upper_band=Decimal(120),
            freeze_quantity=10000,
            previous_close=Decimal(100),
        )
        for s in symbols
    }
    positions = [
        wire.Position.model_construct(
            client_id=c,
            exchange=wire.Exchange.NSE,
            symbol=s,
            product=wire.Product.MIS,
            net_quantity=rng.randint(-50, 50),
            average_price=Decimal(100),
            last_price=Decimal(100),
            realised_pnl=Decimal(0),
            mtm=Decimal(0),
            buy_quantity=0,
            sell_quantity=0,
            updated_at=now,
        )
        for c in clients
        for s in symbols
    ][:n_rows]
    orders = [
        wire.Order.model_construct(
            order_id=f"O{i:06d}",
            client_order_id=f"X{i:06d}",
            client_id=clients[i % len(clients)],
            exchange=wire.Exchange.NSE,
            symbol=symbols[i % n_symbols],
            side=wire.Side.BUY,
            quantity=100,
            filled_quantity=0,
            average_price=Decimal(0),
            product=wire.Product.MIS,
            order_type=wire.OrderType.LIMIT,
            price=Decimal(99),
            trigger_price=None,
            validity=wire.Validity.DAY,
            disclosed_quantity=None,
            status=wire.OrderStatus.OPEN,
            placed_by="bench",
            created_at=now,
            updated_at=now,
        )
        for i in range(n_rows)
    ]
    book = Book(positions, orders, [], instruments, clients)

    handler_times: list[float] = []
    keys_seen: list[float] = []
    bench_grid: Any  # a BookGrid, or the DataTable baseline with its interface (duck-typed)

    if args.child == "datatable":
        table_grid: Any = make_table_grid(DataTable)

        class TableBenchGrid(table_grid):
            def action_cursor_down(self):
                handler_times.append(time.monotonic())
                super().action_cursor_down()

            def action_cursor_up(self):
                handler_times.append(time.monotonic())
                super().action_cursor_up()

        bench_grid = TableBenchGrid
    else:
        from console.tui.widgets.grid import BookGrid

        class BookBenchGrid(BookGrid):
            def action_cursor(self, delta: int) -> None:
                handler_times.append(time.monotonic())
                super().action_cursor(delta)

        bench_grid = BookBenchGrid

    class BenchDesk(DeskScreen):
        GRID = bench_grid

        # (DeskScreen's are Textual workers: these replace them with nothing to do)
        def load_book(self, *_args: Any, **_kwargs: Any) -> Any:  # the bench loads its own synthetic book
            return None

        def sample_status(self, *_args: Any, **_kwargs: Any) -> Any:  # no backend here
            return None

        def on_mount(self) -> None:  # DeskScreen.on_mount runs too (Textual calls each class's handler)
            app = self.app
            assert isinstance(app, BenchConsole)
            app.run_worker(app.start_bench(), name="bench")  # its own task: the app keeps handling keys

    home = Path(tempfile.mkdtemp(prefix="bench-tui-"))

    class BenchConsole(LifeboatApp):
        async def on_event(self, event):
            from textual import events

            if isinstance(event, events.Key):
                keys_seen.append(time.monotonic())
            await super().on_event(event)

        def first_screen(self):
            self.session.identity = Identity("bench", "dealer", clients, "ONLINE")
            return BenchDesk()

        async def start_bench(self) -> None:
            stalls_load: list[float] = []
            stalls_stream: list[float] = []
            phase = {"list": stalls_load}
            frames: list[tuple[float, float]] = []
            orig_display = self._display

            def display(screen, renderable):
                t0 = time.perf_counter()
                orig_display(screen, renderable)
                if renderable is not None:
                    frames.append((time.monotonic(), time.perf_counter() - t0))

            self._display = display  # type: ignore[method-assign]  # the bench times each frame written

            async def ticker():
                period = 0.010
                last = time.perf_counter()
                while True:
                    await asyncio.sleep(period)
                    t = time.perf_counter()
                    phase["list"].append(max(0.0, t - last - period))
                    last = t

            import gc

            gc_pauses: list[tuple[int, float]] = []
            gc_start = {}

            def gc_cb(phase_name, info):
                if phase_name == "start":
                    gc_start["t"] = time.perf_counter()
                else:
                    gc_pauses.append(
                        (info["generation"], time.perf_counter() - gc_start.get("t", time.perf_counter()))
                    )

            gc.callbacks.append(gc_cb)
            tick_task = asyncio.create_task(ticker())
            await asyncio.sleep(0.3)
            t_load = time.monotonic()
            desk = self.screen
            assert isinstance(desk, BenchDesk)
            desk.post_message(BookLoaded(book))
            pos_grid = desk.grid("positions")
            while pos_grid.row_count < len(positions) or desk.grid("orders").row_count < len(orders):
                await asyncio.sleep(0.01)
            load_s = time.monotonic() - t_load
            await asyncio.sleep(0.5)  # the stall of the load's first paint belongs to the load
            phase["list"] = stalls_stream
            stop = threading.Event()
            sent = [0]

            def producer():
                feed = self.feed
                t0 = time.perf_counter()
                while not stop.is_set():
                    due = int((time.perf_counter() - t0) * rate)
                    while sent[0] < due:
                        i = sent[0]
                        sent[0] += 1
                        if i % 5:
                            sym = symbols[rng.randrange(n_symbols)]
                            price = Decimal(100) + Decimal(rng.randrange(-200, 200)) * Decimal("0.05")
                            feed.ticks(
                                wire.TickMsg.model_construct(
                                    type="tick",
                                    seq=i,
                                    server_time=now,
                                    ticks=[
                                        wire.Tick.model_construct(
                                            exchange=wire.Exchange.NSE, symbol=sym, last_price=price
                                        )
                                    ],
                                )
                            )
                        else:
                            o = orders[rng.randrange(len(orders))]
                            o2 = o.model_copy(update={"filled_quantity": rng.randrange(0, 100)})
                            feed.events([wire.OrderEvent.model_construct(type="order", seq=i, data=o2)])
                    time.sleep(0.001)

            th = threading.Thread(target=producer, daemon=True)
            frames.clear()
            gc_pauses.clear()
            t_stream = time.monotonic()
            th.start()
            Path(str(out) + ".ready").write_text(str(t_stream))
            await asyncio.sleep(seconds)
            stop.set()
            t_end = time.monotonic()
            tick_task.cancel()
            stream_frames = [f for f in frames if t_stream <= f[0] <= t_end]
            out.write_text(
                json.dumps(
                    {
                        "variant": args.child,
                        "load_s": load_s,
                        "load_stall_max_ms": 1000 * max(stalls_load or [0]),
                        "stream_stall_p99_ms": 1000 * _pct(stalls_stream, 99),
                        "stream_stall_max_ms": 1000 * max(stalls_stream or [0]),
                        "frames_per_s": len(stream_frames) / (t_end - t_stream),
                        "frame_ms_p50": 1000 * _pct([f[1] for f in stream_frames], 50),
                        "frame_ms_p99": 1000 * _pct([f[1] for f in stream_frames], 99),
                        "updates_per_s": sent[0] / (t_end - t_stream),
                        "handler_times": handler_times,
                        "t_stream": t_stream,
                        "t_end": t_end,
                        "gc_max_ms": 1000 * max([d for _g, d in gc_pauses] or [0]),
                        "gc_gen2": sum(1 for g, _d in gc_pauses if g == 2),
                        "focused": repr(self.focused),
                        "keys_seen": len(keys_seen),
                    }
                )
            )
            self.exit()

    svc = Service(backend_url="http://127.0.0.1:9", home=home, user="bench")
    monitor = None
    if args.metrics:  # metrics on: the console also serves /metrics on its store (bench/bench_metrics.py)
        from sync.monitoring import MonitorServer

        monitor = MonitorServer(svc.store, host="127.0.0.1", port=0)
        port_file = Path(args.metrics)
        port_file.with_name(port_file.name + ".tmp").write_text(str(monitor.port))
        port_file.with_name(port_file.name + ".tmp").replace(port_file)
    app = BenchConsole(svc, ConsoleConfig(idle_lock_minutes=0), start_runtime=False)
    if os.environ.get("BENCH_PROFILE"):  # a cProfile of the child, for finding where the loop goes
        import cProfile

        cProfile.runctx("app.run()", globals(), {"app": app}, os.environ["BENCH_PROFILE"] + f".{args.child}")
    else:
        app.run()
    if monitor is not None:
        monitor.close()


def make_table_grid(DataTable: Any) -> Any:
    """The baseline: the stock DataTable behind the BookGrid interface the desk uses
    (``DataTable``: textual's, which only the child imports)."""

    class TableGrid(DataTable):
        def __init__(self, columns, id=None, quote_of=None, with_quote=None):
            super().__init__(id=id, cursor_type="row")
            self.quote_of, self.with_quote = quote_of, with_quote
            self._by_quote: dict = {}
            self.defs = list(columns)
            self._values: dict = {}
            self._pending: dict = {}
            self._str: dict = {}

        def on_mount(self):
            for c in self.defs:
                self.add_column(c.label, key=c.key, width=c.width)

        def _cells(self, v):
            return [("" if v.get(c.key) is None else c.fmt(v.get(c.key))) for c in self.defs]

        def set_rows(self, rows):
            self.clear()
            self._values, self._str, self._by_quote = {}, {}, {}
            for key, v in rows:
                self._values[key] = dict(v)
                self._str[str(key)] = key
                self.add_row(*self._cells(v), key=str(key))

        def set_quotes(self, quotes):
            """A DataTable has no live quotes: every row holding the symbol gets its cells updated."""
            if self.quote_of is None:
                return
            if not self._by_quote:
                for key, v in self._values.items():
                    self._by_quote.setdefault(self.quote_of(v), []).append(key)
            for q, price in quotes.items():
                for key in self._by_quote.get(q, ()):
                    shown = self.with_quote(self._values[key], price)
                    self.stage(key, {"last_price": shown["last_price"], "mtm": shown["mtm"]})

        def stage(self, key, values):
            prior = self._pending.get(key)
            self._pending[key] = None if values is None else ({**prior, **values} if prior else dict(values))

        def flush(self):
            if not self._pending:
                return 0
            pending, self._pending = self._pending, {}
            with self.app.batch_update():
                for key, values in pending.items():
                    if values is None:
                        if key in self._values:
                            del self._values[key]
                            self.remove_row(str(key))
                        continue
                    row = self._values.get(key)
                    if row is None:
                        self._values[key] = dict(values)
                        self._str[str(key)] = key
                        self.add_row(*self._cells(values), key=str(key))
                        continue
                    for k, v in values.items():
                        if row.get(k) != v:
                            row[k] = v
                            col = (
                                next(c for c in self.defs if c.key == k)
                                if any(c.key == k for c in self.defs)
                                else None
                            )
                            if col is not None:
                                self.update_cell(str(key), k, "" if v is None else col.fmt(v))
            return len(pending)

        def row(self, key):
            return self._values.get(key)

        def keys(self):
            return list(self._values)

        @property
        def cursor_key(self):
            if not self.row_count:
                return None
            return self._str.get(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)

        def move_to(self, key):
            self.move_cursor(row=self.get_row_index(str(key)))
            return True

    return TableGrid


def _pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


# ============================================================================ parent (the terminal)


def run_variant(variant: str, args) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-tui-out-")) / f"{variant}.json"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            variant,
            "--out",
            str(out),
            "--rows",
            str(args.rows),
            "--rate",
            str(args.rate),
            "--seconds",
            str(args.seconds),
            *(["--metrics", args.metrics] if getattr(args, "metrics", None) else []),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    written = [0]
    tail = bytearray()
    done = threading.Event()

    def reader():  # a terminal reads everything the app writes
        while not done.is_set():
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    return
                written[0] += len(chunk)
                tail.extend(chunk)
                del tail[:-20000]

    threading.Thread(target=reader, daemon=True).start()
    ready = Path(str(out) + ".ready")
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            done.set()
            time.sleep(0.2)
            text = tail.decode(errors="replace")
            raise SystemExit(
                f"{variant}: the console did not start (exit {proc.returncode}); it wrote:\n{text[-3000:]}"
            )
        time.sleep(0.02)
    sends: list[float] = []
    rng = random.Random(1)
    end = float(ready.read_text()) + args.seconds - 0.5
    i = 0
    while time.monotonic() < end:
        time.sleep(0.04 + rng.random() * 0.02)
        sends.append(time.monotonic())
        os.write(master, KEYS[(i // 10) % 2])  # ten down, ten up, ...
        i += 1
    proc.wait(60)
    done.set()
    os.close(master)
    res = json.loads(out.read_text())
    if os.environ.get("BENCH_DEBUG"):
        print(
            variant, res["focused"], res["keys_seen"], "gc max ms", res["gc_max_ms"], "gen2", res["gc_gen2"]
        )
    handled = res.pop("handler_times")
    # the app may handle fewer keys than were sent (keys_handled says so): pair the first ones
    lat = [1000 * (h - s) for s, h in zip(sends, handled, strict=False)]
    res.update(
        keys_sent=len(sends),
        keys_handled=len(handled),
        key_ms_p50=_pct(lat, 50),
        key_ms_p99=_pct(lat, 99),
        key_ms_max=max(lat or [0]),
        bytes_out=written[0],
    )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 s per variant")
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--rate", type=int, default=1000, help="updates per second")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--child", choices=("grid", "datatable"))
    ap.add_argument("--out")
    ap.add_argument(
        "--metrics",
        metavar="PORT_FILE",
        help="child: also serve a MonitorServer (/metrics) on the console's store and write its port to "
        "PORT_FILE (bench/bench_metrics.py scrapes it)",
    )
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.seconds = 4.0
    load0 = os.getloadavg()
    print(
        f"bench_tui: {args.rows} positions + {args.rows} orders, {args.rate} updates/s, {args.seconds:.0f} s per "
        f"variant, 200x50 pty; load average at start {load0[0]:.2f} (2 cores, shared)"
    )
    results = [run_variant(v, args) for v in ("grid", "datatable")]
    print(
        f"{'':12}{'key p50':>9}{'key p99':>9}{'key max':>9}{'keys':>10}{'frames/s':>10}{'frame p99':>10}"
        f"{'load':>8}{'load stall':>11}{'stall p99':>10}{'upd/s':>8}"
    )
    for r in results:
        print(
            f"{r['variant']:12}{r['key_ms_p50']:8.1f}m{r['key_ms_p99']:8.1f}m{r['key_ms_max']:8.1f}m"
            f"{r['keys_handled']:>5}/{r['keys_sent']:<4}{r['frames_per_s']:10.1f}{r['frame_ms_p99']:9.1f}m"
            f"{r['load_s']:7.2f}s{r['load_stall_max_ms']:10.0f}m{r['stream_stall_p99_ms']:9.1f}m{r['updates_per_s']:8.0f}"
        )
    g, d = results
    ratio = lambda a, b: (a / b) if b else float("nan")  # noqa: E731
    print(
        f"ratios grid/datatable: key p99 {ratio(g['key_ms_p99'], d['key_ms_p99']):.2f}, "
        f"frames/s {ratio(g['frames_per_s'], d['frames_per_s']):.2f}, "
        f"load stall {ratio(g['load_stall_max_ms'], d['load_stall_max_ms']):.2f}"
    )
    print(
        f"goal (grid): key p99 <= 50 ms: {'met' if g['key_ms_p99'] <= 50 else 'NOT met'}; "
        f">= 20 frames/s: {'met' if g['frames_per_s'] >= 20 else 'NOT met'}"
    )
    print(
        f"load average at end {os.getloadavg()[0]:.2f}; key latency = pty write -> cursor handler run "
        f"(another process, as a terminal); frames = screen updates written"
    )


if __name__ == "__main__":
    main()
