"""Start the reference backend (mainsim) as a real subprocess on 127.0.0.1, and keep
account of every process the tests start, so that none outlives the run.

Shared by tests and benches.  mainsim binds an ephemeral port and writes a ready
file (JSON: url, control_url, pid) once it is serving; we wait for that file.

Cleaning up (tests/conftest.py uses these): a SimProcess runs in its own process group
and is killed with it; from the main thread it also dies with this process (Linux's
parent-death signal), and whatever is still running at interpreter exit is killed
(``atexit``).  Other test processes are ``track``-ed and stopped at the end of the test
that started them (``stop_tracked``).  The session is marked in the environment
(``SESSION_ENV``), which every process started from it inherits, its grandchildren too:
``leftovers`` finds those still alive, and the descendants of this process.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SESSION_ENV = "LBTESTS_SESSION"  # not LIFEBOAT_*: tests/cli_env.py passes the environment on without those

_sim_procs: list[subprocess.Popen] = []  # every mainsim started, for the atexit sweep
_tracked: list[subprocess.Popen] = []


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """Linux: SIGKILL this child when the thread that started it (the main thread) dies, even by kill -9."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and, when it leads its own process group, the group; then reap it."""
    if proc.poll() is not None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def track(proc: subprocess.Popen) -> subprocess.Popen:
    """Count ``proc`` as started by the current test: ``stop_tracked`` stops it if the test did not."""
    _tracked.append(proc)
    return proc


def tracked_count() -> int:
    return len(_tracked)


def stop_tracked(since: int = 0, grace: float = 5.0) -> list[int]:
    """Stop the tracked processes from index ``since`` on that still run (SIGTERM, then SIGKILL
    after ``grace`` seconds); forget them.  Returns the pids it had to stop."""
    procs, _tracked[since:] = _tracked[since:], []
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        try:
            p.terminate()
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for p in alive:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(p)
    for p in procs:  # close the pipes the test left open
        for pipe in (p.stdin, p.stdout, p.stderr):
            if pipe is not None:
                pipe.close()
    return [p.pid for p in alive]


def mark_session() -> str:
    """Mark this process's environment with a new session id (inherited by every process it starts)."""
    os.environ[SESSION_ENV] = uuid.uuid4().hex
    return os.environ[SESSION_ENV]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def leftovers(mark: str | None = None) -> dict[int, str]:
    """Processes still alive (zombies are dead) that this session started: those carrying the
    session's mark in their environment (an orphaned grandchild too) and this process's
    descendants; not multiprocessing's own helpers.  {pid: command line}."""
    mark = mark or os.environ.get(SESSION_ENV)
    needle = f"{SESSION_ENV}={mark}".encode() if mark else None
    me = os.getpid()
    parents: dict[int, int] = {}
    marked: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            continue
        parents[pid] = stat[1]
        if needle is not None:
            try:
                if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    marked.add(pid)
            except OSError:
                pass

    def descends(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            seen.add(pid)
            pid = parents[pid]
            if pid == me:
                return True
        return False

    found = {pid: _cmdline(pid) for pid in parents if pid in marked or descends(pid)}
    return {pid: cmd for pid, cmd in found.items() if "multiprocessing" not in cmd}


def kill_pids(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for child in multiprocessing.active_children():  # reaps the forked ones
        child.join(0)


@atexit.register
def _kill_running_sims() -> None:
    for proc in _sim_procs:
        _kill_group(proc)


@dataclass
class SimProcess:
    db: Path
    workdir: Path
    seed: int = 7
    heartbeat_ms: int = 250
    allow_faults: bool = False
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    url: str = ""
    control_url: str | None = None
    port: int = 0  # reused on restart so clients can reconnect to the same address

    def start(self, timeout: float = 30.0) -> SimProcess:
        ready = self.workdir / f"ready-{time.monotonic_ns()}.json"
        args = [
            sys.executable,
            "-m",
            "mainsim",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
            "--seed",
            str(self.seed),
            "--heartbeat-ms",
            str(self.heartbeat_ms),
            "--ready-file",
            str(ready),
            *self.extra_args,
        ]
        if self.allow_faults:
            args.append("--allow-faults")
        with open(self.workdir / "mainsim.log", "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # dies with this process if it is killed before it can clean up (main thread only:
                # the signal comes when the thread that started the child ends)
                preexec_fn=_die_with_parent
                if sys.platform == "linux" and threading.current_thread() is threading.main_thread()
                else None,
            )
        _sim_procs.append(self.proc)
        try:
            self._wait_ready(ready, timeout)
        except BaseException:  # not ready, or interrupted (a test's timeout, ^C): nothing left running
            self.kill()
            raise
        return self

    def _wait_ready(self, ready: Path, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mainsim exited with {self.proc.returncode}; see {self.workdir / 'mainsim.log'}"
                )
            if ready.exists():
                try:
                    info = json.loads(ready.read_text())
                except json.JSONDecodeError:
                    time.sleep(0.02)
                    continue
                self.url = info["url"]
                self.control_url = info.get("control_url")
                self.port = int(self.url.rsplit(":", 1)[1])
                return
            time.sleep(0.02)
        raise RuntimeError("mainsim did not become ready in time")

    def kill(self) -> None:
        """kill -9 (its process group): the hard crash the persistence guarantees are about."""
        if self.proc and self.proc.poll() is None:
            _kill_group(self.proc)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> SimProcess:
        self.kill()
        return self.start()
