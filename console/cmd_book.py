"""The session and book commands: login, logout, sync bod, positions, orders, status
and agent (console/cli.py declares their flags; console/runner.py runs them)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from console.exitcodes import ExitCode
from console.runner import UsageProblem, emit_json, err, out, read_password, run
from console.service import Service

if TYPE_CHECKING:
    from pydantic import BaseModel

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
            rows: Sequence[BaseModel]
            cols: tuple[str, ...]
            if what == "positions":
                rows = await svc.positions(client, local=local, password=password)
                cols = _POSITION_COLS
            else:
                rows = await svc.orders(client, local=local, password=password)
                cols = _ORDER_COLS
            if as_json:
                emit_json([r.model_dump(mode="json") for r in rows])
            else:
                source = (
                    "local store"
                    if local
                    else f"the DR site {svc.backend_url}"
                    if svc.dr_url and svc.backend_url == svc.dr_url
                    else "main system"
                )
                _table(rows, cols, f"{what} ({source}): {len(rows)}")
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


def _site_lines(sites: dict) -> list[tuple[str, str]]:
    """Main and the DR site, one line each, then where actions go (an alarm when nowhere safe)."""
    lines = []
    for s in sites["sites"]:
        if not s["reachable"]:
            text = f"{s['url']} UNREACHABLE: {s.get('error', 'unknown')}"
        else:
            text = f"{s['url']} {s['role']}, epoch {s['epoch']}"
            text += f", {s['latency_ms']} ms" if s.get("latency_ms") is not None else ""
            if s["role"] == "standby":
                text += f", following {s.get('following') or 'nobody'}"
                lag = s.get("replication_lag_s")
                text += f", replication lag {lag:g} s" if lag is not None else ", replication lag unknown"
        lines.append((f"site {s['name']}", text))
    if sites.get("split_brain") or sites.get("fenced"):
        lines.append(("ALARM", f"{sites['reason']}; actions go to the local journal"))
    else:
        lines.append(("actions go to", sites["active"] or f"the local journal ({sites['reason']})"))
    return lines


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
    if st.get("sites"):
        lines += _site_lines(st["sites"])
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


def agent(g, *, metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> int:
    def action(svc: Service):
        password = read_password(g, required=False)
        from console.rms_config import RmsConfigError, load

        try:  # the risk rules must never run half-configured: a bad [rms] setting stops the agent here
            load(svc.data_dir)
        except RmsConfigError as exc:
            raise UsageProblem(str(exc)) from None
        monitor = None
        if metrics_port is not None:
            from console.monitoring_config import MonitoringConfigError, alert_token
            from sync.monitoring import MonitorServer

            try:
                token = alert_token(svc.data_dir)
            except MonitoringConfigError as exc:
                raise UsageProblem(str(exc)) from None
            try:
                monitor = MonitorServer(svc.store, host=metrics_host, port=metrics_port, token=token)
            except OSError as exc:
                raise UsageProblem(
                    f"cannot serve metrics on {metrics_host}:{metrics_port} ({exc.strerror or exc})"
                ) from None
            if token is None:
                err.print(
                    "agent: no Alertmanager token configured ([monitoring] alertmanager_token_file): "
                    "the webhook refuses every notification",
                    markup=False,
                )

        async def go():
            loop = asyncio.get_running_loop()
            task = asyncio.current_task()
            for sig in (signal.SIGINT, signal.SIGTERM):
                if task is not None:  # always: go() runs as asyncio.run's task
                    loop.add_signal_handler(sig, task.cancel)

            def ready(runtime):
                served = f"; metrics, health and webhook on {monitor.url}" if monitor is not None else ""
                err.print(
                    f"agent running for {svc.current_user()} against {svc.backend_url} "
                    f"(store {svc.store.path}){served}; Ctrl-C to stop",
                    markup=False,
                )

            try:
                await svc.run_agent(password, ready=ready, monitor=monitor)
            except asyncio.CancelledError:
                err.print("agent stopped", markup=False)
            finally:
                if monitor is not None:
                    monitor.close()
            return 0

        return go()

    return run(g, action)
