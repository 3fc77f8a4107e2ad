"""The `lifeboat` command line (typer).

Heavy modules (SQLAlchemy, httpx, uvicorn, Textual) are imported inside the
commands that need them, so `lifeboat status` starts fast and the CLI path never
imports Textual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from console.exitcodes import ExitCode

app = typer.Typer(
    name="lifeboat",
    help="Backup trading console: mirrors the main system, fails over to a local book, replays exactly once.",
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


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    backend: Optional[str] = typer.Option(None, "--backend", envvar="LIFEBOAT_BACKEND_URL", help="Main backend base URL."),
    home: Optional[Path] = typer.Option(None, "--home", envvar="LIFEBOAT_HOME", help="Data directory (store, logs, config)."),
    user: Optional[str] = typer.Option(None, "--user", envvar="LIFEBOAT_USER", help="User id."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    ctx.obj = Globals(backend=backend, home=home, user=user, password_stdin=password_stdin)
    if ctx.invoked_subcommand is None:
        typer.echo("The console screen is not built yet; see `lifeboat --help` for the commands.", err=True)
        raise typer.Exit(ExitCode.USAGE)


@app.command()
def sim(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8700, "--port", help="Port (0 for an ephemeral one)."),
    db: Path = typer.Option(Path("mainsim.db"), "--db", help="mainsim's own SQLite file."),
    seed: int = typer.Option(7, "--seed", help="Seed of the deterministic demo data."),
    heartbeat_ms: int = typer.Option(250, "--heartbeat-ms", min=10, help="Stream heartbeat interval."),
    allow_faults: bool = typer.Option(False, "--allow-faults", help="Enable the supervisor-only fault control."),
    ready_file: Optional[Path] = typer.Option(None, "--ready-file", help="Write {url, control_url, pid} here once serving."),
    activity: float = typer.Option(0.0, "--activity", min=0, help="Background simulated orders per second."),
) -> None:
    """Run the reference main backend (mainsim)."""
    from mainsim.__main__ import serve

    raise typer.Exit(
        serve(host=host, port=port, db=db, seed=seed, heartbeat_ms=heartbeat_ms,
              allow_faults=allow_faults, ready_file=ready_file, activity=activity)
    )


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
def agent(ctx: typer.Context) -> None:
    """The console's runtime with no screen: live mirror (failure detector and replay come later)."""
    from console import cmd_book

    raise typer.Exit(cmd_book.agent(ctx.obj))


@app.command()
def positions(
    ctx: typer.Context,
    client: Optional[str] = typer.Option(None, "--client", help="One client."),
    local: bool = typer.Option(False, "--local", help="From the local store instead of the main system."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Net positions, from the main system or the local store."""
    from console import cmd_book

    raise typer.Exit(cmd_book.book(ctx.obj, "positions", client, local, as_json))


@app.command()
def orders(
    ctx: typer.Context,
    client: Optional[str] = typer.Option(None, "--client", help="One client."),
    local: bool = typer.Option(False, "--local", help="From the local store instead of the main system."),
    as_json: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Orders, from the main system or the local store."""
    from console import cmd_book

    raise typer.Exit(cmd_book.book(ctx.obj, "orders", client, local, as_json))


sync_app = typer.Typer(help="Start-of-day snapshot, journal replay, reconciliation.", no_args_is_help=True)
app.add_typer(sync_app, name="sync")


@sync_app.command("bod")
def sync_bod(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Take the start-of-day snapshot of your scope (replaces the previous one in one transaction)."""
    from console import cmd_book

    raise typer.Exit(cmd_book.sync_bod(ctx.obj, as_json))


audit_app = typer.Typer(help="The hash-chained audit log of this console.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the audit chain: exit 0 when intact, 1 naming the first bad row."""
    from console.cmd_audit import verify_command

    raise typer.Exit(verify_command(ctx.obj.home if ctx.obj else None))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
