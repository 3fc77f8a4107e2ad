"""`lifeboat rms status` and `lifeboat rms cutoff`: the risk rules for runbooks."""

from __future__ import annotations

import sys

from console.cmd_trade import _confirm, _password_for, journaled_line
from console.runner import UsageProblem, emit_json, err, out, run
from console.service import Service, sends


def status(g, as_json: bool) -> int:
    def action(svc: Service):
        async def go():
            return _show(await svc.rms_status(), as_json)

        return go()

    return run(g, action)


def _show(st: dict, as_json: bool) -> int:
    if as_json:
        emit_json(st)
        return 0
    from rich.table import Table

    t = Table(title=f"intraday cut-off ({st['timezone']}, {st['trading_date']})", header_style="bold")
    for c in ("segment", "cut-off", "in", "state"):
        t.add_column(c)
    for s in st["cutoffs"]:
        left = s["seconds_left"]
        when = f"{int(left // 60)} min {int(left % 60)} s" if left > 0 else "passed"
        if s["done_at"]:
            state = f"done at {s['done_at'][11:19]} UTC"
        else:
            will = s["will"]
            state = (
                f"will cancel {will['cancel_mis_orders']} MIS order(s), "
                f"square off {will['squareoff_mis_positions']} MIS position(s)"
            )
        t.add_row(s["segment"], s["cutoff"], when, state)
    out.print(t)
    clients = Table(title="MTM against the MTM-loss limit", header_style="bold")
    for col in ("client", "MTM", "limit", "used", "alert", "mode", "prices"):
        clients.add_column(col, justify="right" if col in ("MTM", "limit", "used") else "left")
    for r in st["clients"]:
        clients.add_row(
            r["client_id"],
            f"{r['mtm']:,.2f}",
            "-" if r["max_mtm_loss"] is None else f"{r['max_mtm_loss']:,.0f}",
            "-" if r["used_pct"] is None else f"{r['used_pct']:.1f}%",
            f"{r['alert_level']}%" if r["alert_level"] else "",
            r["mode"],
            ("STALE " if r["stale"] else "")
            + ("" if r["price_age_s"] is None else f"{r['price_age_s']:.0f} s old"),
        )
    out.print(clients)
    return 0


def cutoff(g, *, segment: str | None, dry_run: bool, yes: bool, as_json: bool) -> int:
    def action(svc: Service):
        if segment is not None and (not segment.isascii() or not segment.isalpha() or len(segment) > 8):
            raise UsageProblem(f"--segment {segment!r}: give a segment such as NSE, BSE or NFO")
        if not dry_run:
            _confirm(
                yes, f"run the intraday cut-off now for {segment.upper() if segment else 'every segment'}"
            )

        async def go():
            password = await _password_for(svc, g)
            res = await svc.rms_cutoff(segment=segment, dry_run=dry_run, password=password)
            if as_json:
                emit_json(res.as_dict())
            else:
                _print(res)
            sys.stdout.flush()
            svc.acknowledge(res)
            return res.exit_code

        return go()

    return run(g, action)


def _print(res) -> None:
    from rich.table import Table

    for s in res.segments:
        title = f"intraday cut-off {s['segment']} ({res.mode}{', dry run' if res.dry_run else ''})"
        if s.get("already_done"):
            out.print(f"{title}: already done today; nothing to do", markup=False)
            continue
        t = Table(title=f"{title}: {len(s['cancels'])} cancels, {len(s['legs'])} legs", header_style="bold")
        for c in (
            "what",
            "client",
            "exchange",
            "symbol",
            "product",
            "side",
            "quantity",
            "client_order_id",
            "outcome",
        ):
            t.add_column(c, justify="right" if c == "quantity" else "left")
        for c in s["cancels"]:
            t.add_row(
                "cancel",
                c["client_id"],
                c["exchange"],
                c["symbol"],
                c["product"],
                "",
                "",
                c["cancel_client_order_id"],
                c["outcome"] + (f": {c['reason']}" if c.get("reason") else ""),
            )
        for leg in s["legs"]:
            t.add_row(
                "square off",
                leg["client_id"],
                leg["exchange"],
                leg["symbol"],
                leg["product"],
                leg["side"],
                str(leg["quantity"]),
                leg.get("client_order_id") or "",
                leg["outcome"] + (f": {leg['reason']}" if leg.get("reason") else ""),
            )
        out.print(t)
        if s.get("left_on_main"):
            err.print(
                f"still open on main after the cut-off: {len(s['left_on_main'])} MIS position(s); check them",
                markup=False,
            )
    if not sends(res.mode) and not res.dry_run:
        err.print(journaled_line(res.mode), markup=False)
