"""The `lifeboat` command line (typer).

Heavy modules (SQLAlchemy, httpx, uvicorn, Textual) are imported inside the
commands that need them, so `lifeboat status` starts fast and the CLI path never
imports Textual.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import typer
from typer.core import TyperGroup

from console.exitcodes import ExitCode

try:  # typer 0.2x carries its own copy of click; its exceptions are not click's
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    # the same module's other home (mypy sees both; only one imports)
    from click import exceptions as _click_errors  # type: ignore[no-redef]

# ends a command normally (typer's Exit/Abort; click's too, for an older typer on the real click)
_PASS_THROUGH = tuple(
    {
        typer.Exit,
        typer.Abort,
        getattr(_click_errors, "Exit", typer.Exit),
        getattr(_click_errors, "Abort", typer.Abort),
    }
)

# The global options, as `lifeboat [GLOBALS] COMMAND` takes them; also accepted after the command.
GLOBAL_VALUE_OPTIONS = ("--backend", "--dr-backend", "--home", "--user")
GLOBAL_FLAG_OPTIONS = ("--password-stdin",)
_JSON_WANTED = "lifeboat.json"  # ctx.meta key: the command was given --json


def _own_option(command, name: str):
    """The option of ``command`` spelled ``name``, or None."""
    for p in getattr(command, "params", ()):
        if getattr(p, "param_type_name", "") == "option" and (name in p.opts or name in p.secondary_opts):
            return p
    return None


def hoist_global_options(group, ctx, args: list[str]) -> tuple[list[str], bool]:
    """Move the global options typed after the command (``lifeboat sync bod --user u``)
    to just before it, where the top-level parser reads them; also tell whether the
    command itself was given ``--json``.  The walk follows the command path
    (``order place``) and skips the values of the command's own options, so a value is
    never taken for an option; everything after ``--`` is left alone."""
    out: list[str] = []
    hoisted: list[str] = []
    command, at_top, insert_at, wants_json = group, True, None, False
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        name, eq, _ = token.partition("=")
        if token.startswith("-") and token != "-":
            own = _own_option(command, name)
            if own is None and not at_top and name in GLOBAL_VALUE_OPTIONS + GLOBAL_FLAG_OPTIONS:
                take = 2 if name in GLOBAL_VALUE_OPTIONS and not eq else 1
                hoisted.extend(args[i : i + take])
                i += take
                continue
            if own is not None and not own.is_flag and not getattr(own, "count", False) and not eq:
                out.extend(
                    args[i : i + 1 + own.nargs]
                )  # the option and its value(s), whatever they look like
                i += 1 + own.nargs
                continue
            wants_json = wants_json or (own is not None and name == "--json")
            out.append(token)
            i += 1
            continue
        out.append(token)
        i += 1
        sub = command.get_command(ctx, token) if isinstance(command, TyperGroup) else None
        if sub is None:
            if isinstance(command, TyperGroup):  # not a command: the parser will say so
                out.extend(args[i:])
                break
            continue  # an argument of the command
        if insert_at is None:
            insert_at = len(out) - 1
        command, at_top = sub, False
    if hoisted:
        out[insert_at:insert_at] = hoisted
    return out, wants_json


def _usage_reason(exc) -> str:
    return {
        "MissingParameter": "missing_option",
        "NoSuchOption": "unknown_option",
        "BadParameter": "bad_value",
        "BadOptionUsage": "bad_option",
        "BadArgumentUsage": "bad_argument",
    }.get(type(exc).__name__, "usage")


def emit_error_json(code: ExitCode, reason: str, message: str, error_id: str | None) -> None:
    """The one JSON object a --json command prints for a failure (CONTRACT.md)."""
    import json
    import sys

    sys.stdout.write(
        json.dumps(
            {
                "ok": False,
                "error": {
                    "code": code.name.lower(),
                    "exit_code": int(code),
                    "reason": reason,
                    "message": message,
                    "error_id": error_id,
                },
            }
        )
        + "\n"
    )
    sys.stdout.flush()


class LifeboatGroup(TyperGroup):
    """The top-level command: global options after the command, and one error boundary.

    Failures inside a command's service work are answered by console.runner.run;
    this catches what happens around it: a flag or value the parser refuses (exit 2)
    and anything unforeseen (exit 1, never a traceback).  With --json either one is
    also one JSON object on stdout."""

    def parse_args(self, ctx, args):
        args, wants_json = hoist_global_options(self, ctx, list(args))
        ctx.meta[_JSON_WANTED] = wants_json
        try:
            return super().parse_args(ctx, args)
        except _click_errors.ClickException as exc:
            if wants_json:
                emit_error_json(ExitCode.USAGE, _usage_reason(exc), exc.format_message(), None)
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # stdout closed by a pager or `head`: typer's own handling
                raise
            self._unexpected(ctx, exc)
        except _click_errors.ClickException as exc:
            if ctx.meta.get(_JSON_WANTED):
                emit_error_json(ExitCode.USAGE, _usage_reason(exc), exc.format_message(), None)
            raise
        except Exception as exc:  # noqa: BLE001 - the last boundary: a message and exit 1, not a traceback
            self._unexpected(ctx, exc)

    @staticmethod
    def _unexpected(ctx, exc: BaseException):
        from console import eventlog

        error_id = eventlog.log_error("command_failed", exc)
        message = f"unexpected error: {type(exc).__name__}: {str(exc)[:300]}"
        if ctx.meta.get(_JSON_WANTED):
            emit_error_json(ExitCode.UNEXPECTED, "unexpected", message, error_id)
        typer.echo(f"lifeboat: {message} [{error_id}]", err=True)
        raise typer.Exit(ExitCode.UNEXPECTED) from None


app = typer.Typer(
    name="lifeboat",
    cls=LifeboatGroup,
    help="Backup trading console: mirrors the main system, fails over to a local book, replays exactly once.\n\n"
    "The global options (--backend, --dr-backend, --home, --user, --password-stdin) go before or after "
    "the command: `lifeboat --user dealer1 sync bod` and `lifeboat sync bod --user dealer1` are the same.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Globals:
    backend: str | None
    home: Path | None
    user: str | None
    password_stdin: bool
    dr_backend: str | None = None  # the broker's DR site (console.site_config; the DR tier)
    as_json: bool = False  # the command was given --json: failures are JSON on stdout too
    password: str | None = None  # read ahead from stdin by _start_password_check
    early: object = None  # localstore.verifier.EarlyCheck


def _start_password_check(g: Globals) -> None:
    """A script's trading command (``--password-stdin`` on a pipe, user known): read the
    password now and start the offline check's scrypt (about 0.5 s, run without the GIL)
    in a thread before the heavy imports, so a backup-mode command does not wait for it
    afterwards (bench P3).  The answer is used only if this command logs in offline, after
    the throttle, clock and grant checks; with main up it is simply dropped."""
    import sys

    if not (g.password_stdin and g.user) or g.password is not None or sys.stdin.isatty():
        return
    g.password = sys.stdin.readline().rstrip("\r\n")
    if g.password:
        from localstore.paths import store_path
        from localstore.verifier import start_check_from_file

        g.early = start_check_from_file(store_path(g.home), g.user, g.password)


_MAX_URL = 2048


def _check_url(value: str | None) -> str | None:
    """A base URL httpx can use: http(s), a host name DNS can carry, a port in range."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    shown = value if len(value) <= 60 else value[:40] + f"... ({len(value)} characters)"
    if len(value) > _MAX_URL:
        raise typer.BadParameter(f"{shown} is too long for a URL (at most {_MAX_URL} characters)")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError as exc:
        raise typer.BadParameter(f"{shown} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{shown} is not an http:// or https:// URL with a host")
    host = parts.hostname
    if len(host) > 253 or any(not 0 < len(label) <= 63 for label in host.rstrip(".").split(".")):
        raise typer.BadParameter(
            f"{shown}: the host name is not valid (labels of 1-63 characters, 253 in all)"
        )
    return value


def _check_user(value: str | None) -> str | None:
    if value is not None and not 0 < len(value) <= 64:
        raise typer.BadParameter("a user id has 1 to 64 characters")
    return value


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"lifeboat {version('lifeboat')}")
        except PackageNotFoundError:
            typer.echo("lifeboat (version unknown: not installed as a package)")
        raise typer.Exit(ExitCode.OK)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    backend: str | None = typer.Option(
        None, "--backend", envvar="LIFEBOAT_BACKEND_URL", callback=_check_url, help="Main backend base URL."
    ),
    dr_backend: str | None = typer.Option(
        None,
        "--dr-backend",
        envvar="LIFEBOAT_DR_BACKEND_URL",
        callback=_check_url,
        help="DR site base URL (accepted and kept; not used yet).",
    ),
    home: Path | None = typer.Option(
        None, "--home", envvar="LIFEBOAT_HOME", help="Data directory (store, logs, config)."
    ),
    user: str | None = typer.Option(
        None, "--user", envvar="LIFEBOAT_USER", callback=_check_user, help="User id."
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=False,
        callback=_version,
        help="Print the version and exit.",
    ),
) -> None:
    ctx.obj = Globals(
        backend=backend,
        home=home,
        user=user,
        password_stdin=password_stdin,
        dr_backend=dr_backend,
        as_json=bool(ctx.meta.get(_JSON_WANTED)),
    )
    if ctx.invoked_subcommand is None:
        import sys

        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            typer.echo("The console needs a terminal; see `lifeboat --help` for the commands.", err=True)
            raise typer.Exit(ExitCode.USAGE)
        from console.tui import run_console  # Textual only here: other commands never import it

        raise typer.Exit(run_console(backend=backend, home=home, user=user, dr_backend=dr_backend))


@app.command()
def sim(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8700, "--port", help="Port (0 for an ephemeral one)."),
    db: Path = typer.Option(Path("mainsim.db"), "--db", help="mainsim's own SQLite file."),
    seed: int = typer.Option(7, "--seed", help="Seed of the deterministic demo data."),
    heartbeat_ms: int = typer.Option(250, "--heartbeat-ms", min=10, help="Stream heartbeat interval."),
    allow_faults: bool = typer.Option(
        False, "--allow-faults", help="Enable the supervisor-only fault control."
    ),
    ready_file: Path | None = typer.Option(
        None, "--ready-file", help="Write {url, control_url, pid} here once serving."
    ),
    activity: float = typer.Option(0.0, "--activity", min=0, help="Background simulated orders per second."),
    trading_date: str | None = typer.Option(
        None,
        "--trading-date",
        metavar="YYYY-MM-DD",
        help="The trading date main runs (and names its contract months) for; default: today in Asia/Kolkata.",
    ),
    role: str = typer.Option(
        "primary", "--role", metavar="primary|standby", help="primary, or a DR standby (needs --follow)."
    ),
    follow: str | None = typer.Option(
        None, "--follow", metavar="URL", help="The primary a standby follows (DR)."
    ),
    follow_user: str = typer.Option(
        "super1",
        "--follow-user",
        help="The supervisor a standby logs in as (password: env LIFEBOAT_SIM_FOLLOW_PASSWORD, default demo).",
    ),
) -> None:
    """Run the reference main backend (mainsim), or a DR standby following one."""
    from datetime import date

    from mainsim.__main__ import serve

    day = None
    if trading_date is not None:
        try:
            day = date.fromisoformat(trading_date)
        except ValueError:
            raise typer.BadParameter(
                f"not a date (YYYY-MM-DD): {trading_date!r}", param_hint="--trading-date"
            ) from None
    if role not in ("primary", "standby"):
        raise typer.BadParameter(f"primary or standby, not {role!r}", param_hint="--role")
    if (role == "standby") != (follow is not None):
        raise typer.BadParameter(
            "--role standby needs --follow URL, and --follow is only for a standby", param_hint="--follow"
        )
    raise typer.Exit(
        serve(
            host=host,
            port=port,
            db=db,
            seed=seed,
            heartbeat_ms=heartbeat_ms,
            allow_faults=allow_faults,
            ready_file=ready_file,
            activity=activity,
            trading_date=day,
            role="standby" if role == "standby" else "primary",
            follow=follow,
            follow_user=follow_user,
        )
    )


@app.command()
def demo(
    drill: bool = typer.Option(False, "--drill", help="Play the DR drill by itself and write its report."),
    directory: Path | None = typer.Option(None, "--dir", help="Data dir (default: a new temp dir)."),
    report: Path | None = typer.Option(
        None, "--report", help="Where --drill writes its report (default: --dir)."
    ),
    headless: bool = typer.Option(False, "--headless", hidden=True, help="No screen (tests, CI)."),
    dr: bool = typer.Option(
        False,
        "--dr",
        help="With --drill: the DR drill (a DR site beside main; main lost, DR promoted, DR lost, switch-back).",
    ),
) -> None:
    """mainsim on loopback with demo data and the console logged in (ctrl+o: outage)."""
    from console.cmd_demo import run_demo

    raise typer.Exit(run_demo(drill=drill, data_dir=directory, report_dir=report, headless=headless, dr=dr))


@app.command()
def login(ctx: typer.Context) -> None:
    """Log in online: token to the OS keyring; offline grant and local verifier to the store."""
    from console import cmd_book

    raise typer.Exit(cmd_book.login(ctx.obj))


@app.command()
def logout(ctx: typer.Context) -> None:
    """Forget the saved session token."""
    from console import cmd_book

    raise typer.Exit(cmd_book.logout(ctx.obj))


@app.command()
def status(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Mode, backend, journal depth, replay state, last BOD, mirror staleness."""
    from console import cmd_book

    raise typer.Exit(cmd_book.status(ctx.obj, as_json))


@app.command()
def agent(
    ctx: typer.Context,
    metrics_port: int | None = typer.Option(
        None,
        "--metrics-port",
        min=0,
        max=65535,
        help="Also serve /metrics (Prometheus), /healthz and the Alertmanager webhook /alertmanager on this port (0: any free port).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="The address the metrics port listens on (default loopback only)."
    ),
) -> None:
    """The console's runtime with no screen: the live mirror of your book, the failure detector
    (ONLINE, SUSPECT, BACKUP, RECOVERING) and, once main is back, the automatic journal replay."""
    from console import cmd_book

    raise typer.Exit(cmd_book.agent(ctx.obj, metrics_port=metrics_port, metrics_host=metrics_host))


@app.command()
def positions(
    ctx: typer.Context,
    client: str | None = typer.Option(None, "--client", help="One client."),
    local: bool = typer.Option(False, "--local", help="From the local store instead of the main system."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Net positions, from the main system or the local store."""
    from console import cmd_book

    raise typer.Exit(cmd_book.book(ctx.obj, "positions", client, local, as_json))


@app.command()
def orders(
    ctx: typer.Context,
    client: str | None = typer.Option(None, "--client", help="One client."),
    local: bool = typer.Option(False, "--local", help="From the local store instead of the main system."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Orders, from the main system or the local store."""
    from console import cmd_book

    raise typer.Exit(cmd_book.book(ctx.obj, "orders", client, local, as_json))


sync_app = typer.Typer(help="Start-of-day snapshot, journal replay, reconciliation.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


@sync_app.command("bod")
def sync_bod(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")
) -> None:
    """Take the start-of-day snapshot of your scope (replaces the previous one in one transaction)."""
    from console import cmd_book

    raise typer.Exit(cmd_book.sync_bod(ctx.obj, as_json))


@sync_app.command("replay")
def sync_replay(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")
) -> None:
    """Replay the journal to the main system now, then reconcile.

    Exit 0 only when every entry ended applied or moot and reconciliation found no mismatch
    (verdict clean); 6 held entries or mismatches (each with its next step); 4 rejected by main;
    5 main unavailable before the end; 7 another process holds the replay.  --json carries
    the same verdict."""
    from console import cmd_sync

    raise typer.Exit(cmd_sync.replay(ctx.obj, as_json))


@sync_app.command("report")
def sync_report(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")
) -> None:
    """The last reconciliation report, judged by the same rules and exit codes as `sync replay`."""
    from console import cmd_sync

    raise typer.Exit(cmd_sync.report(ctx.obj, as_json))


@sync_app.command("held")
def sync_held(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")
) -> None:
    """Journal entries held for a supervisor's decision (exit 6 when there are any)."""
    from console import cmd_sync

    raise typer.Exit(cmd_sync.held(ctx.obj, as_json))


@sync_app.command("release")
def sync_release(
    ctx: typer.Context,
    seq: int = typer.Argument(..., help="Journal sequence number."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Supervisor (audited): send a held entry on the next replay."""
    from console import cmd_sync

    raise typer.Exit(cmd_sync.decide(ctx.obj, seq, release=True, as_json=as_json))


@sync_app.command("discard")
def sync_discard(
    ctx: typer.Context,
    seq: int = typer.Argument(..., help="Journal sequence number."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Supervisor (audited): never send a held entry."""
    from console import cmd_sync

    raise typer.Exit(cmd_sync.decide(ctx.obj, seq, release=False, as_json=as_json))


# --------------------------------------------------------------------------- trading

# Choices as small local enums (not contract.wire's: that would import pydantic at start-up).
SideChoice = Enum("SideChoice", {"BUY": "BUY", "SELL": "SELL"}, type=str)
ProductChoice = Enum("ProductChoice", {"MIS": "MIS", "NRML": "NRML", "CNC": "CNC"}, type=str)
TypeChoice = Enum("TypeChoice", {"MARKET": "MARKET", "LIMIT": "LIMIT", "SL": "SL", "SL_M": "SL-M"}, type=str)
ValidityChoice = Enum("ValidityChoice", {"DAY": "DAY", "IOC": "IOC"}, type=str)
ExchangeChoice = Enum("ExchangeChoice", {"NSE": "NSE", "BSE": "BSE", "NFO": "NFO"}, type=str)
ModeAction = Enum("ModeAction", {"show": "show", "force": "force", "auto": "auto"}, type=str)
ForcedMode = Enum(
    "ForcedMode", {"ONLINE": "ONLINE", "BACKUP": "BACKUP", "RECOVERING": "RECOVERING"}, type=str
)


@app.command()
def squareoff(
    ctx: typer.Context,
    client: str | None = typer.Option(None, "--client", help="Flatten this client."),
    symbol: str | None = typer.Option(None, "--symbol", help="Only this symbol (with --client)."),
    all_: bool = typer.Option(False, "--all", help="Flatten your whole scope."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the legs; send and journal nothing."),
    yes: bool = typer.Option(False, "--yes", help="No confirmation prompt (scripts)."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout: every leg and the mode."),
    keep_orders: bool = typer.Option(False, "--keep-orders", help="Do not cancel the scope's open orders."),
) -> None:
    """Flatten positions in every mode (online: MARKET orders; main down: journaled)."""
    _start_password_check(ctx.obj)  # first: before the heavy imports
    from console import cmd_trade

    raise typer.Exit(
        cmd_trade.squareoff(
            ctx.obj,
            client=client,
            symbol=symbol,
            all_=all_,
            dry_run=dry_run,
            yes=yes,
            as_json=as_json,
            keep_orders=keep_orders,
        )
    )


rms_app = typer.Typer(help="Risk rules: MTM against limits, the intraday cut-off.", no_args_is_help=True)
app.add_typer(rms_app, name="rms")


@rms_app.command("status")
def rms_status(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")
) -> None:
    """Per client: MTM, its MTM-loss limit, % used, mode; per segment: the next intraday cut-off
    and what it will do (the rules run by themselves in `lifeboat agent` and the console)."""
    from console import cmd_rms

    raise typer.Exit(cmd_rms.status(ctx.obj, as_json))


@rms_app.command("cutoff")
def rms_cutoff(
    ctx: typer.Context,
    segment: str | None = typer.Option(None, "--segment", help="One segment (NSE, BSE, NFO); default all."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what it would cancel and square off; do nothing."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(
        False, "--json", help="JSON on stdout (legs and cancels, as squareoff --json)."
    ),
) -> None:
    """The intraday cut-off now: pending MIS orders cancelled first, then every MIS position of
    the segment squared off (protected legs); once per day (a segment already done says so).
    Exit 0 done or journaled, 4 a leg rejected, 6 something left for a person."""
    from console import cmd_rms

    raise typer.Exit(cmd_rms.cutoff(ctx.obj, segment=segment, dry_run=dry_run, yes=yes, as_json=as_json))


order_app = typer.Typer(help="Place, modify or cancel one order.", no_args_is_help=True)
app.add_typer(order_app, name="order")


@order_app.command("place")
def order_place(
    ctx: typer.Context,
    client: str = typer.Option(..., "--client", help="Client id."),
    exchange: ExchangeChoice = typer.Option(..., "--exchange", case_sensitive=False, help="NSE, BSE or NFO."),
    symbol: str = typer.Option(..., "--symbol", help="Trading symbol."),
    side: SideChoice = typer.Option(..., "--side", case_sensitive=False, help="BUY or SELL."),
    quantity: int = typer.Option(..., "--quantity", help="Quantity (a multiple of the lot size)."),
    product: ProductChoice = typer.Option(..., "--product", case_sensitive=False, help="MIS, NRML or CNC."),
    order_type: TypeChoice = typer.Option(
        ..., "--type", case_sensitive=False, help="MARKET, LIMIT, SL or SL-M."
    ),
    price: str | None = typer.Option(None, "--price", help="Limit price (LIMIT, SL)."),
    trigger: str | None = typer.Option(None, "--trigger", help="Trigger price (SL, SL-M)."),
    validity: ValidityChoice = typer.Option("DAY", "--validity", case_sensitive=False, help="DAY or IOC."),
    disclosed: int | None = typer.Option(None, "--disclosed", help="Disclosed quantity."),
    yes: bool = typer.Option(False, "--yes", help="No confirmation prompt (scripts)."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Place an order (main down: reduce-only unless a supervisor allows new exposure)."""
    _start_password_check(ctx.obj)  # first: before the heavy imports
    from console import cmd_trade

    raise typer.Exit(
        cmd_trade.place(
            ctx.obj,
            client=client,
            exchange=exchange.value,
            symbol=symbol,
            side=side.value,
            quantity=quantity,
            product=product.value,
            order_type=order_type.value,
            price=price,
            trigger=trigger,
            validity=validity.value if isinstance(validity, Enum) else validity,
            disclosed=disclosed,
            yes=yes,
            as_json=as_json,
        )
    )


@order_app.command("modify")
def order_modify(
    ctx: typer.Context,
    order_id: str | None = typer.Option(None, "--order-id", help="The main system's order id."),
    client_order_id: str | None = typer.Option(None, "--client-order-id", help="Or the client order id."),
    quantity: int | None = typer.Option(None, "--quantity", help="New quantity."),
    price: str | None = typer.Option(None, "--price", help="New price."),
    trigger: str | None = typer.Option(None, "--trigger", help="New trigger price."),
    yes: bool = typer.Option(False, "--yes", help="No confirmation prompt (scripts)."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Modify an open order (main down: downwards only)."""
    _start_password_check(ctx.obj)  # first: before the heavy imports
    from console import cmd_trade

    raise typer.Exit(
        cmd_trade.modify(
            ctx.obj,
            order_id=order_id,
            client_order_id=client_order_id,
            quantity=quantity,
            price=price,
            trigger=trigger,
            yes=yes,
            as_json=as_json,
        )
    )


@order_app.command("cancel")
def order_cancel(
    ctx: typer.Context,
    order_id: str | None = typer.Option(None, "--order-id", help="The main system's order id."),
    client_order_id: str | None = typer.Option(None, "--client-order-id", help="Or the client order id."),
    yes: bool = typer.Option(False, "--yes", help="No confirmation prompt (scripts)."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Cancel an open order."""
    _start_password_check(ctx.obj)  # first: before the heavy imports
    from console import cmd_trade

    raise typer.Exit(
        cmd_trade.cancel(
            ctx.obj, order_id=order_id, client_order_id=client_order_id, yes=yes, as_json=as_json
        )
    )


@app.command()
def killswitch(
    ctx: typer.Context,
    off: bool = typer.Option(False, "--off", help="Release the kill switch (supervisor)."),
    yes: bool = typer.Option(False, "--yes", help="Accepted for scripts; the kill switch never prompts."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Cancel all open orders in scope and block new exposure (every mode)."""
    _start_password_check(ctx.obj)  # first: before the heavy imports
    from console import cmd_trade

    raise typer.Exit(cmd_trade.killswitch(ctx.obj, off=off, yes=yes, as_json=as_json))


@app.command()
def mode(
    ctx: typer.Context,
    what: ModeAction = typer.Argument("show", case_sensitive=False, help="show, force, or auto."),
    target: ForcedMode | None = typer.Argument(
        None, case_sensitive=False, help="With force: ONLINE, BACKUP or RECOVERING."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Show the mode, or (supervisor, audited) force one / go back to automatic."""
    from console import cmd_trade

    raise typer.Exit(
        cmd_trade.mode(
            ctx.obj,
            what=what.value if isinstance(what, Enum) else what,
            target=target.value if isinstance(target, Enum) else target,
            as_json=as_json,
        )
    )


@app.command()
def policy(
    ctx: typer.Context,
    what: str = typer.Argument("show", help="show or set."),
    allow: bool | None = typer.Option(
        None,
        "--allow-new-exposure/--reduce-only",
        help="With set: allow new exposure in backup, or reduce-only.",
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Show the backup policy, or (supervisor, audited) change it."""
    from console import cmd_trade

    raise typer.Exit(cmd_trade.policy(ctx.obj, what=what, allow=allow, as_json=as_json))


@app.command()
def journal(
    ctx: typer.Context,
    unfinished: bool = typer.Option(False, "--unfinished", help="Only entries not yet replayed."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """The backup journal, with entries committed but never acknowledged marked."""
    from console import cmd_trade

    raise typer.Exit(cmd_trade.journal_view(ctx.obj, unfinished=unfinished, as_json=as_json))


audit_app = typer.Typer(help="The hash-chained audit log of this console.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")
) -> None:
    """Check the audit chain against its signed checkpoints (and main's latest witnessed one):
    exit 0 when no row is found broken (rows no checkpoint covers yet are named as such),
    8 (integrity) naming the first row that differs."""
    from console.cmd_audit import verify_command

    g = ctx.obj
    raise typer.Exit(
        verify_command(
            g.home if g else None,
            backend=g.backend if g else None,
            user=g.user if g else None,
            as_json=as_json,
        )
    )


user_app = typer.Typer(help="Users locked out of offline login (supervisor, audited).", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("release")
def user_release(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="The locked user."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Release USER's offline lockout and failure delay (supervisor's password; works offline)."""
    from console import cmd_user

    raise typer.Exit(cmd_user.release(ctx.obj, user=user, as_json=as_json))


@user_app.command("lockout")
def user_lockout(
    ctx: typer.Context,
    n: int | None = typer.Argument(
        None, min=0, max=1000, help="Wrong passwords in a row that lock a user offline (0: never)."
    ),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Show the offline lockout count, or (supervisor, audited) set it."""
    from console import cmd_user

    raise typer.Exit(cmd_user.lockout(ctx.obj, n=n, as_json=as_json))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
