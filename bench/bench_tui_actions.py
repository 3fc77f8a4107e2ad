"""P9, a dealer's action round trip in the TUI: key press to result on screen, online.

What it measures: the real console (the bare ``lifeboat`` command) runs as a child in a real
pty (200x50) against mainsim on loopback, logged in ONLINE as dealer1, with a book of at
least 5,000 net positions loaded (the desk's title says so before anything is timed).  This
process plays the terminal: it writes the key bytes to the pty master and reads everything
the console writes back, and an action's time is key write -> the first screen update that
carries its result (read from the pty output, escape sequences stripped):

* order: Enter on the order form (F1, quantity 1, MARKET) -> the notice ``order SENT: O...``
  naming an order id not seen before (the order accepted by main);
* preview: F10 on a position -> the square-off dialog's ``N leg(s) and M open order(s)`` line
  (the service's dry run, from main);
* outcome: y in that dialog -> its ``... (Esc to close)`` status line (the leg sent to main).

Each cycle moves the cursor one row down, then does order, preview, outcome on that position.
Baseline, in the same run, alternating with the cycles: the same REST calls each action makes
on the wire, through a raw keep-alive ``httpx.Client`` with the same dealer's token:
POST /orders; GET /instruments + /positions?client_id + /orders?client_id; those + POST
/orders.  Ratio = TUI / raw at p50 and at p99.

Not counted (listed under the table): a cycle whose action did not run ONLINE.  On a loaded
machine the console's failure detector can miss mainsim's heartbeats (250 ms) and go to
BACKUP, where the order is refused as new exposure and the square-off is journaled; the bench
then closes the dialogs, waits for the ONLINE banner and goes on (three failures in a row end
the cycles).  ``echo`` is key -> the screen's first answer ("sending…", "previewing…",
"squaring off…"): how long the key waited for the console's event loop.

The book: mainsim's demo seed, plus clients B0001.. of dealer1 with one MIS position in each
NSE equity, written into mainsim's database before it starts (the way mainsim seeds itself).
The clock: every process runs at 2026-01-05 09:20 IST (LIFEBOAT_CLOCK_OFFSET_S, as the tests:
tests/testclock.py), so the market is open whatever the real date.

Usage: python bench/bench_tui_actions.py [--quick] [--cycles N] [--budget S] [--rows 5000] [--keep]
BENCH_PROFILE=FILE: a cProfile of the console's main thread (its event loop) to FILE.
The machine is shared: compare the two columns of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import bisect
import codecs
import fcntl
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_tui import _pct  # noqa: E402 - after the path is set

ROWS, COLS = 50, 200
USER, PASSWORD = "dealer1", "demo"
F1, F10, ENTER, ESC, DOWN, CTRL_Q = b"\x1bOP", b"\x1b[21~", b"\r", b"\x1b", b"\x1b[B", b"\x11"
# CSI / OSC / charset / keypad sequences; a sequence cut at a chunk's end is held back
ANSI = re.compile(
    r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>NOPc78M]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)"
)
ORDER_DONE = re.compile(r"order (SENT: (O\d+) [A-Z]|REJECTED|JOURNALED)")
PREVIEW_DONE = re.compile(
    r"(\d+) leg\(s\) and \d+ open order\(s\) to cancel, in (\w+)\.|Nothing to square off"
)
MODE_NOTICE = re.compile(r"-> (SUSPECT|BACKUP): [^\d\n▌│]*([\d.]+)")
ONLINE_BANNER = re.compile(r"ONLINE\s+-\s+orders go to the main system")
BUY_FORM, READY = re.compile(r"BUY ORDER"), re.compile(r"\bready\b")
OUTCOME_DONE = re.compile(r"\(Esc to close\)")
SENDING, PREVIEWING, SQUARING = re.compile("sending…"), re.compile("previewing…"), re.compile("squaring off…")
# the desk's title once the book is in, or the login screen's error (an exception's name, or a refusal)
LOGGED_IN = re.compile(
    r"Net positions\s+\((\d+) rows\)|(\w+Error: [^│\n]*|[^│\n]*(refused|denied|incorrect)[^│\n]*)"
)


# ============================================================================ the console's own process


def console_main() -> None:
    """The child: the bare ``lifeboat`` command, with an in-memory keyring (as ``lifeboat demo``):
    a dealer's desktop keeps the session token in its keyring; this headless machine has none,
    and without one every online action would log in again."""
    from console.demo import use_private_keyring

    use_private_keyring()
    sys.argv = ["lifeboat"]
    from console.cli import main

    out = os.environ.get("BENCH_PROFILE")
    if not out:
        main()
        return
    import cProfile  # the console's main thread (the event loop): where a key waits

    prof = cProfile.Profile()
    try:
        prof.runcall(main)
    finally:
        prof.dump_stats(out)


# ============================================================================ the terminal


class Terminal:
    """A pty running ``argv``; every byte the child writes is read at once, stripped of escape
    sequences and kept with the time it arrived, so a marker's first appearance has a time."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True, cwd=REPO
        )
        os.close(slave)
        self._chunks: list[str] = []  # the text, as read (escape sequences stripped)
        self._ends: list[int] = []  # text length after each chunk
        self._times: list[float] = []  # when that chunk was read
        self._cond = threading.Condition()
        self._log_path = log
        self.bytes_in = 0
        self._done = False
        threading.Thread(target=self._read, daemon=True, name="pty-reader").start()

    def _read(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        held = ""
        with open(self._log_path, "wb") as log:
            while not self._done:
                r, _, _ = select.select([self.master], [], [], 0.1)
                if not r:
                    continue
                try:
                    chunk = os.read(self.master, 1 << 16)
                except OSError:
                    break
                if not chunk:
                    break
                t = time.monotonic()
                log.write(chunk)
                self.bytes_in += len(chunk)
                s = held + decoder.decode(chunk)
                held = ""
                cut = s.rfind("\x1b")
                if cut >= 0 and ANSI.match(s, cut) is None and len(s) - cut < 64:
                    s, held = s[:cut], s[cut:]  # an escape sequence split across reads
                plain = ANSI.sub("", s).replace("\r", "")
                with self._cond:
                    self._chunks.append(plain)
                    self._ends.append((self._ends[-1] if self._ends else 0) + len(plain))
                    self._times.append(t)
                    self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return self._ends[-1] if self._ends else 0

    def _since(self, pos: int) -> tuple[int, int]:
        """(index of the chunk holding text position ``pos``, that chunk's start); under the lock."""
        k = bisect.bisect_right(self._ends, pos)
        return k, (self._ends[k - 1] if k else 0)

    def text(self, start: int, end: int | None = None) -> str:
        with self._cond:
            k, base = self._since(start)
            return "".join(self._chunks[k:])[start - base : None if end is None else end - base]

    def send(self, data: bytes) -> tuple[float, int]:
        """Write key bytes; (the time written, the text position before them)."""
        pos = self.mark()
        t = time.monotonic()
        os.write(self.master, data)
        return t, pos

    def wait_for(
        self, pattern: re.Pattern, since: int, timeout: float, accept=None
    ) -> tuple[float, re.Match]:
        """The first match of ``pattern`` in the text after ``since`` (and ``accept(match)``, when
        given) and the time the chunk completing it was read."""
        deadline = time.monotonic() + timeout
        with self._cond:
            k, base = self._since(since)
            seen = ""  # the text from chunk k on, grown as chunks arrive
            start = since - base
            while True:
                if k < len(self._chunks):
                    seen += "".join(self._chunks[k:])
                    k = len(self._chunks)
                for m in pattern.finditer(seen, start):
                    if accept is None or accept(m):
                        i = bisect.bisect_left(self._ends, base + m.end())
                        return self._times[i], m
                start = max(since - base, len(seen) - 200)  # a marker may be completed by the next chunk
                left = deadline - time.monotonic()
                if left <= 0 or self._done:
                    tail = "".join(self._chunks[-50:])[-1500:]
                    raise TimeoutError(
                        f"no {pattern.pattern!r} on screen in {timeout:g} s; screen text:\n{tail}"
                    )
                self._cond.wait(min(left, 0.5))

    def close(self) -> int | None:
        if self.proc.poll() is None:
            os.write(self.master, CTRL_Q)
            try:
                self.proc.wait(4)
            except subprocess.TimeoutExpired:
                os.write(self.master, b"y")  # "entries not yet on main (a backup spell): quit anyway?"
            try:
                self.proc.wait(12)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own child's group
                self.proc.wait(5)
        self._done = True
        time.sleep(0.15)
        os.close(self.master)
        return self.proc.returncode


# ============================================================================ mainsim with a 5,000-row book


def seed_big_book(db: Path, rows: int) -> list[str]:
    """mainsim's own demo seed, plus clients of dealer1 (B0001, ...) holding one MIS position in
    every NSE equity until dealer1's book has ``rows`` positions; returns the new client ids."""
    from contract import clock, wire
    from mainsim.server import SimConfig, open_store
    from mainsim.store import Changes
    from mainsim.tradingday import market_open_utc

    trading_date = clock.today_ist()
    store = open_store(SimConfig(db=db), trading_date)
    try:
        dealer_clients = {c.client_id for c in store.clients() if c.dealer_id == USER}
        have = sum(1 for p in store.positions() if p.client_id in dealer_clients)
        eq = [i for i in store.instruments() if i.exchange is wire.Exchange.NSE and i.instrument_type == "EQ"]
        at = market_open_utc(trading_date)
        rng = random.Random(9)
        ch = Changes()
        clients: list[wire.Client] = []
        k = 0
        while have < rows:
            cid = f"B{len(clients) + 1:04d}"
            clients.append(wire.Client(client_id=cid, name=f"Bench client {cid}", dealer_id=USER))
            for inst in eq:
                if have >= rows:
                    break
                k += 1
                qty = rng.randint(1, 40) * rng.choice((1, -1))
                avg = inst.last_price
                p = wire.Position(
                    client_id=cid,
                    exchange=inst.exchange,
                    symbol=inst.symbol,
                    product=wire.Product.MIS,
                    net_quantity=qty,
                    average_price=avg,
                    last_price=inst.last_price,
                    realised_pnl=Decimal(0),
                    mtm=Decimal(0),
                    buy_quantity=max(qty, 0),
                    sell_quantity=max(-qty, 0),
                    updated_at=at,
                )
                ch.positions[(cid, "NSE", inst.symbol, "MIS")] = p
                have += 1
        limits = [
            wire.ClientLimit(
                client_id=c.client_id,
                max_order_value=Decimal(100_000_000),
                max_gross_exposure=Decimal(10_000_000_000),
            )
            for c in clients
        ]
        store.db.execute("BEGIN IMMEDIATE")
        store.db.executemany(
            "INSERT INTO clients VALUES(?,?)", [(c.client_id, c.model_dump_json()) for c in clients]
        )
        store.db.executemany(
            "INSERT INTO limits VALUES(?,?)", [(c.client_id, c.model_dump_json()) for c in limits]
        )
        store.db.execute("COMMIT")
        store.commit(ch)
        return [c.client_id for c in clients]
    finally:
        store.close()


# ============================================================================ the raw baseline


class Raw:
    """The same REST calls as each action, through a raw keep-alive httpx client (dealer1's token)."""

    def __init__(self, url: str) -> None:
        import httpx

        r = httpx.post(f"{url}/api/v1/session", json={"user_id": USER, "password": PASSWORD}, timeout=10)
        r.raise_for_status()
        self.http = httpx.Client(
            base_url=f"{url}/api/v1",
            timeout=10,
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        )
        self.n = 0

    def _post_order(self, client_id: str, symbol: str, side: str) -> None:
        self.n += 1
        r = self.http.post(
            "/orders",
            json={
                "client_order_id": f"rawbench-{self.n:06d}",
                "client_id": client_id,
                "exchange": "NSE",
                "symbol": symbol,
                "side": side,
                "quantity": 1,
                "product": "MIS",
                "order_type": "MARKET",
                "validity": "DAY",
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"raw POST /orders: {r.status_code} {r.text[:300]}")

    def _reads(self, client_id: str) -> None:
        for path, params in (
            ("/instruments", None),
            ("/positions", {"client_id": client_id}),
            ("/orders", {"client_id": client_id}),
        ):
            r = self.http.get(path, params=params)
            if r.status_code != 200:
                raise RuntimeError(f"raw GET {path}: {r.status_code} {r.text[:300]}")

    def order(self, client_id: str, symbol: str) -> float:
        t0 = time.monotonic()
        self._post_order(client_id, symbol, "BUY")
        return time.monotonic() - t0

    def preview(self, client_id: str) -> float:
        t0 = time.monotonic()
        self._reads(client_id)
        return time.monotonic() - t0

    def outcome(self, client_id: str, symbol: str) -> float:
        t0 = time.monotonic()
        self._reads(client_id)
        self._post_order(client_id, symbol, "SELL")
        return time.monotonic() - t0

    def close(self) -> None:
        self.http.close()


# ============================================================================ the run


@dataclass
class Figures:
    tui: dict[str, list[float]] = field(default_factory=lambda: {"order": [], "preview": [], "outcome": []})
    raw: dict[str, list[float]] = field(default_factory=lambda: {"order": [], "preview": [], "outcome": []})
    echo: dict[str, list[float]] = field(default_factory=lambda: {"order": [], "preview": [], "outcome": []})
    skipped: list[str] = field(default_factory=list)
    load_s: float = 0.0
    left_online: dict[str, int] = field(default_factory=dict)
    book_rows: int = 0


def settle(seconds: float) -> None:
    """Let the screen finish painting (a dealer's next key comes later than this)."""
    time.sleep(seconds)


def open_form(term: Terminal, fig: Figures, timeout: float) -> None:
    """F1, until the order form is up.  A lone Esc (closing the last dialog) that the console
    reads together with the next key's bytes is not an Esc (an Alt+key): the dialog stays up and
    F1 does nothing.  Then Esc again and retry; untimed."""
    for _attempt in range(4):
        _t, pos = term.send(F1)
        try:
            term.wait_for(BUY_FORM, pos, min(timeout, 4.0))
            return
        except TimeoutError:
            fig.skipped.append("F1 retried (a dialog was still up)")
            term.send(ESC)
            settle(1.0)
    term.wait_for(BUY_FORM, term.send(F1)[1], timeout)


def first_answer(
    term: Terminal, pos: int, echo: re.Pattern, done: re.Pattern, timeout: float, accept=None
) -> float:
    """When the screen first answered the key: its "working" line, or the result itself (a fast
    answer can replace the working line before it is ever painted)."""
    either = re.compile(f"{echo.pattern}|{done.pattern}")

    def ok(m: re.Match) -> bool:
        d = done.fullmatch(m.group(0))
        return d is None or accept is None or accept(d)

    return term.wait_for(either, pos, timeout, accept=ok)[0]


def back_online(term: Terminal, timeout: float) -> None:
    """Close whatever dialog is up and wait for the banner to say ONLINE again."""
    pos = term.mark()
    for _ in range(2):
        term.send(ESC)
        settle(1.0)
    try:
        term.wait_for(ONLINE_BANNER, pos, timeout)
    except TimeoutError:
        pass  # the next cycle tells


def one_cycle(term: Terminal, fig: Figures, seen_orders: set[str], timeout: float, pause: float) -> None:
    # order entry: F1 on the position under the cursor, quantity 1 (MARKET by default), Enter
    open_form(term, fig, timeout)
    settle(pause)
    _t, pos = term.send(b"1")
    term.wait_for(READY, pos, timeout)
    settle(pause)
    t0, pos = term.send(ENTER)
    new_order = lambda m: m.group(2) not in seen_orders  # noqa: E731 - a notice shown again is not it
    fig.echo["order"].append(first_answer(term, pos, SENDING, ORDER_DONE, timeout, new_order) - t0)
    t1, m = term.wait_for(ORDER_DONE, pos, timeout, accept=new_order)
    if m.group(2) is None:
        fig.skipped.append(f"order {m.group(1).split()[0].lower()}")  # rejected, or journaled (not online)
        if m.group(1).startswith("REJECTED"):
            term.send(ESC)  # a rejection stays on the form
    else:
        seen_orders.add(m.group(2))
        fig.tui["order"].append(t1 - t0)
    settle(pause * 2)
    # square-off of the same position: F10 -> the preview, y -> the outcome, Esc
    t0, pos = term.send(F10)
    fig.echo["preview"].append(first_answer(term, pos, PREVIEWING, PREVIEW_DONE, timeout) - t0)
    t1, m = term.wait_for(PREVIEW_DONE, pos, timeout)
    if m.group(1) is None:
        fig.skipped.append("nothing to square off")
        term.send(ESC)
        settle(pause * 2)
        return
    if m.group(2) == "ONLINE":
        fig.tui["preview"].append(t1 - t0)
    else:
        fig.skipped.append(f"preview in {m.group(2)}")
    settle(pause)
    t0, pos = term.send(b"y")
    fig.echo["outcome"].append(first_answer(term, pos, SQUARING, OUTCOME_DONE, timeout) - t0)
    t1, _m = term.wait_for(OUTCOME_DONE, pos, timeout)
    status = term.text(pos)
    if "not done" in status:
        fig.skipped.append("square-off leg not done")
    elif "sent (ONLINE)" not in status:
        fig.skipped.append("square-off not online")
    else:
        fig.tui["outcome"].append(t1 - t0)
    settle(pause)
    term.send(ESC)
    settle(pause * 2)


def run(args) -> Figures:
    from tests import testclock
    from tests.simproc import SimProcess

    testclock.install()  # this process, mainsim and the console: 2026-01-05 09:20 IST, whatever the date
    os.environ["PYTHONPATH"] = str(REPO)  # mainsim and the console from this tree (a worktree too)
    work = Path(tempfile.mkdtemp(prefix="bench-tui-actions-"))
    fig = Figures()
    sim = None
    term = None
    raw = None
    try:
        t_seed = time.monotonic()
        bench_clients = seed_big_book(work / "mainsim.db", args.rows)
        sim = SimProcess(db=work / "mainsim.db", workdir=work).start()
        print(
            f"  mainsim at {sim.url}: dealer1's book seeded to {args.rows} positions "
            f"({len(bench_clients)} bench clients) in {time.monotonic() - t_seed:.1f} s"
        )
        home = work / "home"
        home.mkdir()
        (home / "config.toml").write_text("[console]\nidle_lock_minutes = 0\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFEBOAT_")}
        env.update(
            LIFEBOAT_CLOCK_OFFSET_S=os.environ["LIFEBOAT_CLOCK_OFFSET_S"],
            LIFEBOAT_HOME=str(home),
            LIFEBOAT_CONFIG_DIR=str(work / "config"),  # trust anchors: never the user's own config dir
            LIFEBOAT_BACKEND_URL=sim.url,
            LIFEBOAT_USER=USER,
            TERM="xterm-256color",
            COLUMNS=str(COLS),
            LINES=str(ROWS),
            PYTHONPATH=str(REPO),
        )
        term = Terminal([sys.executable, __file__, "--console"], env, work / "pty.log")
        t_start = time.monotonic()
        term.wait_for(re.compile(r"you will log in ONLINE"), 0, 60)
        _t, pos = term.send(PASSWORD.encode() + ENTER)
        _t, m = term.wait_for(
            LOGGED_IN, pos, 120, accept=lambda m: not m.group(1) or int(m.group(1)) >= args.rows
        )
        if m.group(2):
            raise SystemExit(f"the console did not log in: {m.group(2).strip()}")
        fig.load_s = time.monotonic() - t_start
        fig.book_rows = int(m.group(1))
        print(f"  console up, logged in ONLINE, {fig.book_rows} positions on the desk: {fig.load_s:.1f} s")
        settle(1.0)
        raw = Raw(sim.url)
        seen: set[str] = set()
        rng = random.Random(3)
        t_cycles = time.monotonic()
        failed = 0
        for i in range(args.cycles):
            if i and time.monotonic() - t_cycles > args.budget:
                print(f"  the {args.budget:g} s budget is spent: {i} of {args.cycles} cycles done")
                break
            term.send(DOWN)  # a fresh position each cycle (the last one was squared off)
            settle(args.pause)
            try:
                one_cycle(term, fig, seen, args.timeout, args.pause)
                failed = 0
            except TimeoutError as exc:
                # On a loaded machine the console's detector can miss heartbeats and leave ONLINE
                # (backup refuses new exposure, so the order never says SENT): not a figure.
                failed += 1
                waited = str(exc).split(" on screen")[0].removeprefix("no ")
                fig.skipped.append(f"a cycle timed out waiting for {waited} (the console left ONLINE?)")
                if failed >= 3:
                    print(f"  three cycles in a row timed out; stopping at {i + 1}. The last: {exc}")
                    break
                back_online(term, args.timeout * 4)
            client, symbol = rng.choice(bench_clients), ("INFY", "TCS", "ITC", "SBIN")[i % 4]
            fig.raw["order"].append(raw.order(client, symbol))
            fig.raw["preview"].append(raw.preview(client))
            fig.raw["outcome"].append(raw.outcome(client, symbol))
            if (i + 1) % 10 == 0:
                print(f"  {i + 1}/{args.cycles} cycles")
        print(f"  the console wrote {term.bytes_in / 1e6:.1f} MB to the terminal")
        notices = set(MODE_NOTICE.findall(term.text(0)))  # each names its own figure: "late (459 ms)"
        fig.left_online = {to: sum(1 for n in notices if n[0] == to) for to in ("SUSPECT", "BACKUP")}
        code = term.close()
        term = None
        if code not in (0, None):
            print(f"  note: the console exited with {code}")
    except BaseException:
        if term is not None:
            print(f"  (pty output kept in {work / 'pty.log'}; mainsim log in {work / 'mainsim.log'})")
            work = Path()  # keep the evidence
        raise
    finally:
        if term is not None:
            term.close()
        if raw is not None:
            raw.close()
        if sim is not None:
            sim.kill()
        if args.keep and work != Path():
            print(f"  kept: {work} (pty.log: what the console wrote; mainsim.log)")
        elif work != Path():
            shutil.rmtree(work, ignore_errors=True)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 cycles, to check that it runs")
    ap.add_argument("--cycles", type=int, default=None, help="cycles of order, preview, outcome (full: 40)")
    ap.add_argument(
        "--budget", type=float, default=120.0, help="seconds of cycles at most (the run stays short)"
    )
    ap.add_argument("--rows", type=int, default=5000, help="dealer1's net positions")
    ap.add_argument("--pause", type=float, default=0.15, help="seconds between a result and the next key")
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for one result")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (the pty's output, mainsim's log)")
    ap.add_argument("--console", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.console:
        console_main()
        return
    args.cycles = args.cycles or (5 if args.quick else 40)
    load0 = os.getloadavg()
    print(
        f"bench_tui_actions: the console in a {COLS}x{ROWS} pty against mainsim on loopback, ONLINE as "
        f"{USER}, {args.rows}-row book, {args.cycles} cycles; load average at start {load0[0]:.2f} "
        f"({os.cpu_count()} cores, shared)"
    )
    fig = run(args)
    print(
        f"{'':10}{'n':>4}{'TUI p50':>10}{'TUI p99':>10}{'raw p50':>10}{'raw p99':>10}{'p50 x':>8}{'p99 x':>8}"
        f"{'echo p50':>10}{'echo p99':>10}"
    )
    calls = {
        "order": "POST /orders",
        "preview": "GET instruments, positions, orders",
        "outcome": "the 3 GETs + POST /orders",
    }
    worst = 0.0
    for name in ("order", "preview", "outcome"):
        t, r = [1000 * x for x in fig.tui[name]], [1000 * x for x in fig.raw[name]]
        e = [1000 * x for x in fig.echo[name]]
        tp50, tp99, rp50, rp99 = _pct(t, 50), _pct(t, 99), _pct(r, 50), _pct(r, 99)
        worst = max(worst, tp99)
        print(
            f"{name:10}{len(t):>4}{tp50:9.1f}m{tp99:9.1f}m{rp50:9.1f}m{rp99:9.1f}m"
            f"{(tp50 / rp50 if rp50 else float('nan')):8.1f}{(tp99 / rp99 if rp99 else float('nan')):8.1f}"
            f"{_pct(e, 50):9.1f}m{_pct(e, 99):9.1f}m   raw = {calls[name]}"
        )
    if fig.skipped:
        counts: dict[str, int] = {}
        for why in fig.skipped:
            counts[why] = counts.get(why, 0) + 1
        print("not counted: " + "; ".join(f"{why} x{n}" for why, n in sorted(counts.items())))
    if fig.left_online:
        print(
            f"mode notices: to SUSPECT x{fig.left_online['SUSPECT']}, to BACKUP x{fig.left_online['BACKUP']} "
            f"(the detector missed heartbeats: the machine's load, or a busy console)"
        )
    print(
        f"goal: p99 <= 100 ms online with the {fig.book_rows}-row book: "
        f"{'met' if worst <= 100 else 'NOT met'} (worst p99 {worst:.0f} ms)"
    )
    print(
        f"load average at end {os.getloadavg()[0]:.2f}; TUI = key written to the pty -> the result's text "
        f"read back from it (another process, as a terminal); echo = key -> the screen's first answer "
        f"(sending…, previewing…, squaring off…)"
    )


if __name__ == "__main__":
    main()
