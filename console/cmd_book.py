"""Implementations of the CLI commands that go through the service layer.

console/cli.py declares the flags (cheap to import); this module does the work and
is imported only when such a command runs.  Every failure becomes a short message
on stderr with an error id (the same id is in the JSON log) and the documented exit
code; data goes to stdout.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
import sys
from collections.abc import Callable
from typing import Any

from console import cli_advice, eventlog
from console.exitcodes import ExitCode
from console.service import Service, ServiceError
from console.service.errors import settle


class _LazyConsole:
    """A rich Console made on first use: `status --json` and other data-only runs
    never import rich (bench P7)."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name):
        if self._console is None:
            import os

            from rich.console import Console

            options = dict(self._options)
            stream = sys.stderr if options.get("stderr") else sys.stdout
            if not stream.isatty() and "COLUMNS" not in os.environ:
                # piped into a file or a pager: rich would cut tables at 80 columns, and a
                # cut client_order_id ("352VTD-…") is useless to whoever reads it later
                options["width"] = 200
            self._console = Console(**options)
        return getattr(self._console, name)


err = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)
out = _LazyConsole(highlight=False)


class UsageProblem(ServiceError):
    exit_code = ExitCode.USAGE
    code = "usage"  # the JSON error's reason


def read_password(g, *, required: bool = True) -> str | None:
    """--password-stdin for scripts; a prompt only on a terminal; else a usage error."""
    if g.password_stdin:
        line = g.password if getattr(g, "password", None) is not None else sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise UsageProblem("--password-stdin given but standard input had no password")
        return line
    if not required:
        return None
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    raise UsageProblem("no password: pass --password-stdin (scripts) or run on a terminal")


def _data_dir(home) -> "Path":
    """The data directory, made if need be (localstore.paths.data_dir), with its logs
    directory (0700): else a usage error naming it, since --home or LIFEBOAT_HOME is the
    person's own input (a file there, a parent that cannot be created ...).  What others
    could read there is said on stderr (localstore.paths.privacy_warnings)."""
    from pathlib import Path

    from localstore.paths import LOGS_DIRNAME, data_dir, privacy_warnings, private_dir

    try:
        path = data_dir(home)
        private_dir(path / LOGS_DIRNAME)
        for warning in privacy_warnings(path):
            err.print(f"lifeboat: warning: {warning}", markup=False)
        return path
    except OSError as exc:
        where = Path(home) if home is not None else Path(exc.filename or "the data directory")
        why = "it is a file, not a directory" if where.is_file() else (exc.strerror or type(exc).__name__)
        raise UsageProblem(
            f"cannot use {where} as the data directory: {why} (see --home / LIFEBOAT_HOME)"
        ) from None


def run(g, action: Callable[[Service], Any]) -> int:
    """Run one command: build the service, set up logs, map errors to exit codes.

    This is the error boundary of every service command: a failure is one short line on
    stderr with an error id (the same id is in the JSON log) and the documented exit
    code; with --json it is also one ``{"ok": false, "error": {...}}`` object on stdout.
    The service's own failures come as ServiceErrors already logged (console.service's
    boundary); a failure of the command itself (a usage problem ...) is settled here."""
    service = None
    try:
        logs = _data_dir(g.home) / "logs"
        service = Service(backend_url=g.backend, home=g.home, user=g.user)
        eventlog.setup(logs)
        eventlog.set_context(user=g.user)
        result = action(service)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure ends as a message and an exit code, never a traceback
        # an id only for a line really logged: before the log is set up there is none to point to
        problem = settle(exc)
        code = ExitCode(problem.exit_code)
        text = cli_advice.message(problem)
        if getattr(g, "as_json", False):
            from console.cli import emit_error_json

            emit_error_json(code, problem.code or "unexpected", text, problem.error_id)
        err.print(f"lifeboat: {text}" + (f" [{problem.error_id}]" if problem.error_id else ""), markup=False)
        return int(code)
    finally:
        if service is not None:
            service.close()


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None, default=str) + "\n")


# --------------------------------------------------------------------------- commands


def login(g) -> int:
    def action(svc: Service):
        if not g.user:
            raise UsageProblem("which user? pass --user USER (or set LIFEBOAT_USER)")
        password = read_password(g)

        async def go():
            res = await svc.login(g.user, password)
            kept = "token kept in the OS keyring" if res.token_kept else "token NOT kept (no keyring)"
            err.print(
                f"Logged in as {res.user.user_id} ({res.user.role.value}, {len(res.user.client_ids)} clients) "
                f"on console {res.console_id}; {kept}; offline login possible until "
                f"{res.grant_valid_until.isoformat()}",
                markup=False,
            )
            return 0

        return go()

    return run(g, action)


def logout(g) -> int:
    def action(svc: Service):
        user, token = svc.logout()
        what = {
            "removed": "token removed from the keyring",
            "none": "no saved token in the keyring (nothing to remove)",
            "no_keyring": "no keyring on this machine, so no token was kept (nothing to remove)",
        }[token]
        err.print(f"Logged out {user}: {what}", markup=False)
        return 0

    return run(g, action)


def sync_bod(g, as_json: bool) -> int:
    def action(svc: Service):
        password = read_password(g, required=False)

        async def go():
            res = await svc.sync_bod(password)
            if as_json:
                emit_json(res.as_dict())
            else:
                err.print(
                    f"BOD snapshot for {res.trading_date}: {res.instruments} instruments, {res.clients} clients, "
                    f"{res.positions} positions, {res.open_orders} open orders, {res.trades} trades "
                    f"(event seq {res.seq})",
                    markup=False,
                )
            return 0

        return go()

    return run(g, action)


_POSITION_COLS = (
    "client_id",
    "exchange",
    "symbol",
    "product",
    "net_quantity",
    "average_price",
    "last_price",
    "mtm",
)
_ORDER_COLS = (
    "order_id",
    "client_id",
    "exchange",
    "symbol",
    "side",
    "quantity",
    "filled_quantity",
    "product",
    "order_type",
    "price",
    "status",
)  # --json has every field


def _table(rows, cols, title: str) -> None:
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for c in cols:
        t.add_column(c, justify="right" if c in ("net_quantity", "quantity", "filled_quantity") else "left")
    for r in rows:
        d = r.model_dump(mode="json")
        t.add_row(*["" if d[c] is None else str(d[c]) for c in cols])
    out.print(t)


def book(g, what: str, client: str | None, local: bool, as_json: bool) -> int:
    def action(svc: Service):
        password = None if local else read_password(g, required=False)

        async def go():
            if what == "positions":
                rows = await svc.positions(client, local=local, password=password)
                cols = _POSITION_COLS
            else:
                rows = await svc.orders(client, local=local, password=password)
                cols = _ORDER_COLS
            if as_json:
                emit_json([r.model_dump(mode="json") for r in rows])
            else:
                _table(rows, cols, f"{what} ({'local store' if local else 'main system'}): {len(rows)}")
            return 0

        return go()

    return run(g, action)


def status(g, as_json: bool) -> int:
    """Exit 0, or 5 when the mode is UNAVAILABLE (main unreachable and no backup possible here)."""

    def action(svc: Service):
        async def go():
            st = await svc.status()
            if as_json:
                emit_json(st)
            else:
                for label, text in status_lines(st):
                    out.print(
                        f"{label:<14} {text}", markup=False, soft_wrap=True
                    )  # a long reason stays one line
            return int(ExitCode.UNAVAILABLE) if st["mode"] == "UNAVAILABLE" else 0

        return go()

    return run(g, action)


def status_lines(st: dict) -> list[tuple[str, str]]:
    """`lifeboat status` for a person: every value a word (never, none, unknown), never None."""
    mode = st["mode"]
    if st.get("forced_mode"):
        mode += f" (forced by {st.get('forced_by') or 'a supervisor'}"
        mode += f" since {st['mode_since']})" if st.get("mode_since") else ")"
    elif st.get("mode_since"):
        mode += f" since {st['mode_since']}"
    if st.get("reason"):
        mode += f": {st['reason']}"
    b = st["backend"]
    if b["reachable"]:
        backend = f"{b['url']} reachable" + (
            f", {b['latency_ms']} ms" if b.get("latency_ms") is not None else ""
        )
    else:
        backend = f"{b['url']} UNREACHABLE: {b.get('error') or b.get('kind') or 'unknown'}"
    lines = [("mode", mode), ("backend", backend)]
    if st.get("backup"):
        lines.append(
            (
                "offline login",
                "; ".join(
                    f"{u['user_id']} ({u['role']}) until {u['grant_valid_until']}"
                    for u in st["backup"]["users"]
                ),
            )
        )
    lines.append(("console", f"{st['console_id']} ({st['store']})"))
    if st.get("privacy_warnings"):
        lines.append(("privacy", "; ".join(st["privacy_warnings"])))
    an = st["anchors"]  # where the keys that decide trust are kept, and whether this store is enrolled here
    lines.append(
        (
            "trust anchors",
            f"{an['where']}; "
            + ("enrolled here" if an["enrolled"] else f"NOT enrolled here: {an.get('problem', 'unknown')}"),
        )
    )
    j = st["journal"]
    lines.append(
        (
            "journal depth",
            f"{st['journal_depth']}"
            + (f", {j['unacknowledged']} not yet acknowledged" if j.get("unacknowledged") else ""),
        )
    )
    rp = st["replay"]
    extra = f", {rp['unreplayed']} to replay" if rp.get("unreplayed") else ""
    extra += f", {rp['held']} held for a person" if rp.get("held") else ""
    if rp.get("holder"):
        extra += f" (by {rp['holder']}" + (f" since {rp['since']})" if rp.get("since") else ")")
    extra += (
        f"; last report {rp['last_report_at']}"
        + (f" ({rp['last_verdict']})" if rp.get("last_verdict") else "")
        if rp.get("last_report_at")
        else "; no report yet"
    )
    lines.append(("replay", f"{rp['state']}{extra}"))
    pol = st["policy"]
    policy = (
        ("new exposure allowed" if pol["allow_new_exposure"] else "reduce-only")
        + ", kill switch "
        + ("ON" if pol["killswitch"] else "off")
    )
    lines.append(
        ("policy", policy + (f" (set by {pol['updated_by']})" if pol.get("updated_by") else " (default)"))
    )
    rm = st.get("recorded_mode")
    lines.append(
        (
            "runtime mode",
            f"{rm['mode']} since {rm['since']} ({rm.get('reason') or 'no reason recorded'})"
            if rm
            else "none recorded (no agent or console has run here)",
        )
    )
    lb = st.get("last_bod")
    lines.append(
        ("last BOD", f"{lb['at']} for {lb.get('trading_date') or 'unknown date'}" if lb else "never")
    )
    m = st.get("mirror") or {}
    if not m:
        mirror = "never synced"
    else:
        seq = f"seq {m['last_event_seq']}" if m.get("last_event_seq") is not None else "no event yet"
        stale = m.get("staleness_s")
        mirror = seq + (f", current {stale} s ago" if stale is not None else ", never current")
    lines.append(("mirror", mirror))
    return lines


def agent(g) -> int:
    def action(svc: Service):
        password = read_password(g, required=False)

        async def go():
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, task.cancel)

            def ready(runtime):
                err.print(
                    f"agent running for {svc.current_user()} against {svc.backend_url} "
                    f"(store {svc.store.path}); Ctrl-C to stop",
                    markup=False,
                )

            try:
                await svc.run_agent(password, ready=ready)
            except asyncio.CancelledError:
                err.print("agent stopped", markup=False)
            return 0

        return go()

    return run(g, action)
