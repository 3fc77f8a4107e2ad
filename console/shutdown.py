"""How a console process ends: on SIGTERM / SIGHUP within seconds, and what it leaves unsent.

Why its own module (no Textual): both the bare console (console/tui/__init__.py) and
``lifeboat demo`` (console/cmd_demo.py) use it, and the exit note is plain text on stderr
after the screen is gone.

Signals.  Closing the terminal sends SIGHUP; ``kill`` sends SIGTERM.  A Python signal
handler runs on the main thread between bytecodes, in the middle of whatever the event
loop was doing, and a loop sleeping in select() is not woken by it; and once the terminal
is gone Textual's own shutdown can block for ever writing the screen's restore sequences
(its writer thread has nowhere to write).  So the handler only records the signal and
starts a thread, which:

1. runs the ``stop_now`` steps at once (the demo: stop mainsim),
2. asks the app to exit through ``request_exit`` (thread-safe: call_from_thread),
3. if the process is still alive ``grace_s`` later, runs the ``last`` steps (close the
   store) and ends the process with ``os._exit(128 + signum)``.

A second signal ends the process at once (same code).  The store is a SQLite file in
WAL mode: a process ending at any point leaves it consistent, and its locks go with the
process.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
GRACE_S = 3.0


class EndOnSignal:
    """SIGTERM / SIGHUP end the process within ``grace_s`` (+ the ``stop_now`` steps' own time)."""

    def __init__(
        self,
        *,
        request_exit: Callable[[int], None] | None = None,
        stop_now: Iterable[Callable[[], object]] = (),
        last: Iterable[Callable[[], object]] = (),
        grace_s: float = GRACE_S,
        name: str = "lifeboat",
    ) -> None:
        self.request_exit = request_exit
        self.stop_now = list(stop_now)
        self.last = list(last)
        self.grace_s = grace_s
        self.name = name
        self.signum: int | None = None
        self._previous: dict[int, signal.Handlers | int | Callable[[int, FrameType | None], Any] | None] = {}

    def install(self) -> EndOnSignal:
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self) -> None:
        for sig, prev in self._previous.items():
            try:
                signal.signal(sig, prev)
            except (TypeError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
        self._previous.clear()

    def __enter__(self) -> EndOnSignal:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def _on_signal(self, signum, _frame) -> None:
        if self.signum is not None:  # a second signal: no more waiting
            os._exit(128 + signum)
        self.signum = signum
        threading.Thread(target=self._end, name="end-on-signal", daemon=True).start()

    def _end(self) -> None:
        code = 128 + (self.signum or signal.SIGTERM)
        for step in self.stop_now:
            _quietly(step)
        if self.request_exit is not None:
            # call_from_thread waits for the loop; if the loop never answers, this thread
            # must still reach the deadline below: ask from a thread of its own
            threading.Thread(
                target=_quietly,
                args=(lambda: self.request_exit(code),),
                daemon=True,
                name="end-on-signal-ask",
            ).start()
        time.sleep(self.grace_s)  # the main thread ends the process meanwhile, normally

        def run_last() -> None:
            for step in self.last:
                _quietly(step)

        last = threading.Thread(target=run_last, daemon=True)
        last.start()
        last.join(1.0)
        _say(f"{self.name}: ended by signal {signal.Signals(self.signum or signal.SIGTERM).name}")
        os._exit(code)


def _quietly(step: Callable[[], object]) -> None:
    try:
        step()
    except BaseException:  # noqa: BLE001, S110 - a cleanup step must never stop the others (nothing to tell)
        pass


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # the terminal is gone (SIGHUP): nobody to tell
        pass


# --------------------------------------------------------------------------- who replays what is left


AGENT_LOCK = "agent.lock"


class AgentPresence:
    """Held (shared flock on ``<data dir>/agent.lock``) for as long as ``lifeboat agent``
    runs on a store.  The kernel drops the lock with the process, so a crashed agent is
    never taken for a running one."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / AGENT_LOCK
        self._fd: int | None = None

    def __enter__(self) -> AgentPresence:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return self  # a read-only data dir: the note then says "the next start"
        fcntl.flock(fd, fcntl.LOCK_SH)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the lock
            self._fd = None


def running_agent(data_dir: Path) -> int | None:
    """The pid of a ``lifeboat agent`` running on the store in ``data_dir`` (0 when its pid
    is unreadable), or None when none runs."""
    path = Path(data_dir) / AGENT_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # an agent holds it
            try:
                return int(os.read(fd, 32).split()[0])
            except (ValueError, IndexError, OSError):
                return 0
        return None
    finally:
        os.close(fd)  # also drops our probe lock


def unsent_note(
    entries: list[dict], agent_pid: int | None, *, name: str = "lifeboat", limit: int = 20
) -> str:
    """The exit message for journal entries not yet on main: which, and who sends them."""
    if not entries:
        return ""
    n = len(entries)
    lines = [f"{name}: {n} journal entr{'y is' if n == 1 else 'ies are'} not yet on the main system:"]
    for e in entries[:limit]:
        where = ":".join(str(x) for x in (e.get("exchange"), e.get("symbol")) if x)
        what = " ".join(str(x) for x in (e.get("kind"), e.get("client_id"), where, e.get("product")) if x)
        qty = _quantity(e)
        lines.append(
            f"  #{e.get('seq')} {what}{f' qty {qty}' if qty else ''} ({e.get('state')}; "
            f"{e.get('client_order_id')})"
        )
    if n > limit:
        lines.append(f"  ... and {n - limit} more (lifeboat status lists them)")
    if agent_pid is not None:
        who = f"the agent running on this store{f' (pid {agent_pid})' if agent_pid else ''}"
        lines.append(f"They will be sent by {who}, as soon as main answers.")
    else:
        lines.append(
            "No agent runs on this store: they will be sent at the next start of the console or of "
            "`lifeboat agent` on it, once main answers (`lifeboat sync replay` sends them now)."
        )
    return "\n".join(lines)


def _quantity(e: dict):
    p = e.get("payload") or {}
    return p.get("quantity_at_intent") or p.get("quantity")


def tell_unsent(service, *, name: str = "lifeboat") -> int:
    """After the screen closed: print the unsent journal entries and who sends them on
    stderr (nothing when there are none); returns how many there are."""
    try:
        entries = service.journal_entries(limit=100_000, unfinished_only=True)
    except Exception as exc:  # noqa: BLE001 - the store could not be read: say so, never hide it
        _say(f"{name}: could not read the journal to list unsent entries: {exc}")
        return 0
    if entries:
        _say(unsent_note(entries, running_agent(service.data_dir), name=name))
    return len(entries)
