"""``python -m mainsim``: run the reference main backend (see mainsim.server).

``serve`` is re-exported here because ``lifeboat sim`` calls it by this path.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from mainsim.server import serve

__all__ = ["main", "serve"]


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mainsim", description="Reference main trading backend (simulator)."
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8700, help="0 for an ephemeral port")
    p.add_argument("--db", type=Path, default=Path("mainsim.db"), help="mainsim's own SQLite file")
    p.add_argument("--seed", type=int, default=7, help="seed of the deterministic demo data")
    p.add_argument("--heartbeat-ms", type=_positive, default=250)
    p.add_argument("--allow-faults", action="store_true", help="enable the supervisor-only fault control")
    p.add_argument(
        "--ready-file", type=Path, default=None, help="write {url, control_url, pid} here once serving"
    )
    p.add_argument("--activity", type=float, default=0.0, help="background simulated orders per second")
    p.add_argument("--tick-ms", type=_positive, default=500, help="market tick interval")
    p.add_argument(
        "--trading-date", type=_date, default=None, help="YYYY-MM-DD (default: today in Asia/Kolkata)"
    )
    p.add_argument(
        "--event-retention", type=_positive, default=200_000, help="events kept for ?since= resume"
    )
    p.add_argument(
        "--role",
        choices=("primary", "standby"),
        default="primary",
        help="primary (takes orders) or a DR standby (needs --follow)",
    )
    p.add_argument("--follow", default=None, metavar="URL", help="the primary a standby follows")
    p.add_argument(
        "--follow-user",
        default="super1",
        help="the supervisor a standby logs in as (password: env LIFEBOAT_SIM_FOLLOW_PASSWORD, default demo)",
    )
    p.add_argument(
        "--replication-retention",
        type=_positive,
        default=50_000,
        help="replication log rows kept for standbys (one further behind takes a new snapshot)",
    )
    a = p.parse_args(argv)
    if (a.role == "standby") != (a.follow is not None):
        p.error("--role standby needs --follow URL, and --follow is only for a standby")
    return serve(
        host=a.host,
        port=a.port,
        db=a.db,
        seed=a.seed,
        heartbeat_ms=a.heartbeat_ms,
        allow_faults=a.allow_faults,
        ready_file=a.ready_file,
        activity=max(0.0, a.activity),
        tick_ms=a.tick_ms,
        trading_date=a.trading_date,
        retention=a.event_retention,
        role=a.role,
        follow=a.follow,
        follow_user=a.follow_user,
        rlog_retention=a.replication_retention,
    )


if __name__ == "__main__":
    sys.exit(main())
