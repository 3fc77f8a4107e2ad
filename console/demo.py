"""`lifeboat demo`: a running main backend on loopback and the console logged in, in one command.

Why its own module: the demo owns things no other command has - a child process (mainsim)
that must never outlive it, a data dir that must never touch the user's real store or
keyring, and a fault switch that stages an outage on purpose.  The screen side (keys, the
drill on screen) lives in console/tui/drill.py; this module never imports Textual, so the
drill's bookkeeping can be tested and reused without a screen.

Layout of the demo's data dir (a new temp dir, or ``--dir``)::

    mainsim.db   mainsim's own SQLite file (kept: a second run with --dir resumes it)
    mainsim.log  its output
    dr.db, dr.log  the DR site's (``--drill --dr``: a second mainsim, a standby following main)
    home/        LIFEBOAT_HOME of the demo console: store, logs, config.toml
    drill-report.json / .md   written by --drill (or into --report DIR)
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

DEMO_USER = "dealer1"
DEMO_PASSWORD = "demo"  # the seeded demo data's password (CONTRACT.md); loopback only
SUPERVISOR = "super1"
DEFAULT_ACTIVITY = 0.5  # background orders per second: books move, a newcomer sees fills
READY_TIMEOUT_S = 30.0


class DemoError(Exception):
    """The demo could not start (mainsim did not come up, the dir is unusable); one sentence."""


# --------------------------------------------------------------------------- data dir


def make_data_dir(given: Path | None) -> Path:
    """The given dir (created if missing) or a fresh temp dir."""
    if given is None:
        return Path(tempfile.mkdtemp(prefix="lifeboat-demo-"))
    path = given.expanduser()
    if path.exists() and not path.is_dir():
        raise DemoError(f"--dir {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create --dir {path}: {exc.strerror or exc}") from None
    return path.resolve()


# --------------------------------------------------------------------------- mainsim, the child


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM this child when the demo process dies, even by kill -9."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class DemoBackend:
    """mainsim as a child process on 127.0.0.1 (ephemeral port, faults allowed).

    ``name`` names its files in the data dir (``mainsim``: mainsim.db, mainsim.log,
    mainsim-ready.json; the DR drill's DR site is ``dr``).  Started again (after ``kill``), it
    takes the port it had, so a console configured with its URL finds it there."""

    data_dir: Path
    activity: float = DEFAULT_ACTIVITY
    seed: int = 7
    tick_ms: int = 500
    proc: subprocess.Popen | None = None
    url: str = ""
    control_url: str = ""
    extra_args: list[str] = field(default_factory=list)
    name: str = "mainsim"
    port: int = 0  # 0: an ephemeral port, then the one it got (kept for a restart)

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    @property
    def db_path(self) -> Path:
        return self.data_dir / f"{self.name}.db"

    @property
    def ready_path(self) -> Path:
        return self.data_dir / f"{self.name}-ready.json"

    def start(self, timeout: float = READY_TIMEOUT_S) -> DemoBackend:
        ready = self.ready_path
        ready.unlink(missing_ok=True)
        args = [
            sys.executable,
            "-m",
            "mainsim",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            str(self.db_path),
            "--seed",
            str(self.seed),
            "--ready-file",
            str(ready),
            "--allow-faults",
            "--activity",
            str(self.activity),
            "--tick-ms",
            str(self.tick_ms),
            *self.extra_args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(
                    f"mainsim exited with code {self.proc.returncode} before it was ready; "
                    f"see {self.log_path}"
                )
            try:
                info = json.loads(ready.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.05)
                continue
            self.url = info["url"]
            self.control_url = info.get("control_url") or info["url"]
            self.port = int(self.url.rsplit(":", 1)[1])
            return self
        self.stop()
        raise DemoError(f"mainsim was not ready after {timeout:.0f} s; see {self.log_path}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int | None:
        """kill -9 (its process group: it runs in a session of its own), then reaped: the disaster."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        return self.proc.returncode

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code (None: never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        return self.proc.returncode


# --------------------------------------------------------------------------- the fault switch


class OutageSwitch:
    """Stages and ends an outage through mainsim's fault control, as supervisor super1.

    The control URL is a direct listener that the fault never touches, so the switch
    works while the public address refuses connections.  One kept HTTP connection and
    session: staging is a single short request, so the drill knows within a few ms when
    the outage began.  Blocking calls: the screen calls them from a worker thread."""

    def __init__(
        self,
        control_url: str,
        *,
        user: str = SUPERVISOR,
        password: str = DEMO_PASSWORD,
        timeout_s: float = 10.0,
    ) -> None:
        self.control_url = control_url.rstrip("/")
        self.user, self.password = user, password
        self.timeout_s = timeout_s
        self.active = False
        self._http: httpx.Client | None = None  # made on first use
        self._token: str | None = None

    def _client(self):
        if self._http is None:
            import httpx

            self._http = httpx.Client(base_url=f"{self.control_url}/api/v1", timeout=self.timeout_s)
        return self._http

    def prepare(self) -> None:
        """Log in as the supervisor now, so that staging is one request (the drill times it)."""
        r = self._client().post("/session", json={"user_id": self.user, "password": self.password})
        r.raise_for_status()
        self._token = r.json()["access_token"]

    def set(self, mode: str) -> str:
        if self._token is None:
            self.prepare()
        body = {"mode": mode}
        r = self._client().post(
            "/admin/faults", json=body, headers={"Authorization": f"Bearer {self._token}"}
        )
        if r.status_code == 401:  # the kept session ended (mainsim restarted, token expired): once more
            self.prepare()
            r = self._client().post(
                "/admin/faults", json=body, headers={"Authorization": f"Bearer {self._token}"}
            )
        r.raise_for_status()
        now_mode = r.json()["mode"]
        self.active = now_mode != "none"
        return now_mode

    def stage(self, mode: str = "refuse") -> str:
        return self.set(mode)

    def end(self) -> str:
        return self.set("none")

    def toggle(self) -> str:
        return self.end() if self.active else self.stage()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


# --------------------------------------------------------------------------- the console's side


def use_private_keyring() -> None:
    """Keep the demo's session token in this process only.

    The demo's token is for a throwaway server on loopback: it must neither overwrite a
    real ``dealer1`` token in the user's OS keyring nor be lost on a headless machine
    (where keyring has no backend and the console's runtime would have no session).
    An in-memory backend does both; nothing is written anywhere."""
    import keyring
    from keyring.backend import KeyringBackend

    class DemoKeyring(KeyringBackend):
        priority = 1

        def __init__(self) -> None:
            super().__init__()
            self._items: dict[tuple[str, str], str] = {}

        def get_password(self, service, username):
            return self._items.get((service, username))

        def set_password(self, service, username, password):
            self._items[(service, username)] = password

        def delete_password(self, service, username):
            self._items.pop((service, username), None)

    keyring.set_keyring(DemoKeyring())


def console_home(data_dir: Path) -> Path:
    home = data_dir / "home"
    home.mkdir(parents=True, exist_ok=True)
    return home


def flat_on_main(positions, client_id: str) -> bool:
    """Every position of ``client_id`` on main has net quantity 0 (no rows is flat too)."""
    return all(p.net_quantity == 0 for p in positions if p.client_id == client_id)


def pick_drill_client(positions) -> tuple[str, int] | None:
    """The client with the most open legs (ties: the smallest id): the square-off to show."""
    legs: dict[str, int] = {}
    for p in positions:
        if p.net_quantity != 0:
            legs[p.client_id] = legs.get(p.client_id, 0) + 1
    if not legs:
        return None
    client = sorted(legs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    return client


def pick_drill_clients(positions, n: int) -> list[tuple[str, int]]:
    """The ``n`` clients with the most open legs (ties: the smallest id), as (client, legs)."""
    legs: dict[str, int] = {}
    for p in positions:
        if p.net_quantity != 0:
            legs[p.client_id] = legs.get(p.client_id, 0) + 1
    return sorted(legs.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


# --------------------------------------------------------------------------- the DR drill's two sites


class SiteAdmin:
    """The broker's side of the DR drill: a supervisor (super1) declaring the disaster on a
    site (``/admin/promote``) and planning the switch-back (``/admin/demote``), and each site's
    word about itself (``/health``).  Blocking calls, a fresh login each time a token is
    needed (a restarted site forgets its sessions): the drill runs them in a worker thread."""

    def __init__(self, *, user: str = SUPERVISOR, password: str = DEMO_PASSWORD, timeout_s: float = 10.0):
        self.user, self.password, self.timeout_s = user, password, timeout_s
        self._tokens: dict[str, str] = {}

    def _url(self, site: DemoBackend, path: str) -> str:
        return f"{site.url.rstrip('/')}/api/v1{path}"

    def login(self, site: DemoBackend) -> str:
        import httpx

        r = httpx.post(
            self._url(site, "/session"),
            json={"user_id": self.user, "password": self.password},
            timeout=self.timeout_s,
        )
        r.raise_for_status()
        self._tokens[site.url] = r.json()["access_token"]
        return self._tokens[site.url]

    def _post(self, site: DemoBackend, path: str, body: dict | None = None) -> dict:
        import httpx

        token = self._tokens.get(site.url) or self.login(site)
        for attempt in (1, 2):
            r = httpx.post(
                self._url(site, path),
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout_s,
            )
            if r.status_code == 401 and attempt == 1:  # the site restarted: its sessions are gone
                token = self.login(site)
                continue
            break
        if r.status_code != 200:
            raise DemoError(f"{path} at {site.url} answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def promote(self, site: DemoBackend) -> dict:
        """The site becomes primary with a higher epoch (its /health as it answered)."""
        return self._post(site, "/admin/promote")

    def demote(self, site: DemoBackend, follow: str) -> dict:
        """The site becomes a standby following ``follow``."""
        return self._post(site, "/admin/demote", {"follow": follow})

    def health(self, site: DemoBackend) -> dict:
        import httpx

        r = httpx.get(self._url(site, "/health"), timeout=self.timeout_s)
        r.raise_for_status()
        return r.json()


def orders_by_coid(db: Path) -> Counter[str]:
    """How many orders each client_order_id has in a site's SQLite file (read-only, its own
    connection; the site may be running).  Orders without one (the seed's) are left out."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT client_order_id FROM orders WHERE client_order_id IS NOT NULL").fetchall()
    finally:
        con.close()
    return Counter(c for (c,) in rows)


def holds(orders: Counter[str], coid: str) -> int:
    """How many orders a site holds for one accepted action: the order ``coid`` itself, or a
    journaled square-off's slices (the replay sends slice k as ``{coid}-{k}``, sync/replay.py)."""
    slices = sum(n for c, n in orders.items() if c.startswith(f"{coid}-") and c[len(coid) + 1 :].isdigit())
    return orders[coid] + slices


def check_sites(dbs: dict[str, Path], accepted: list[str]) -> dict:
    """Both sites' databases by client_order_id: no order twice in either, every accepted
    action (``accepted``: client_order_ids; a journaled square-off counts by its slices) in
    each, and the same set of orders on both."""
    counts = {name: orders_by_coid(db) for name, db in dbs.items()}
    twice = {name: sorted(c for c, n in cnt.items() if n > 1) for name, cnt in counts.items()}
    missing = {name: sorted(c for c in accepted if not holds(cnt, c)) for name, cnt in counts.items()}
    sets = [set(cnt) for cnt in counts.values()]
    every: set[str] = set().union(*sets)
    common: set[str] = sets[0].intersection(*sets[1:]) if sets else set()
    differ = sorted(every - common)
    ok = not any(twice.values()) and not any(missing.values()) and not differ
    return {
        "ok": ok,
        "orders": {name: sum(cnt.values()) for name, cnt in counts.items()},
        "accepted_checked": len(accepted),
        "twice": twice,
        "missing": missing,
        "on_one_site_only": differ[:20],
    }
