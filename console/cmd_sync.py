"""`lifeboat sync replay|report|held|release|discard`: the journal replay and its
reconciliation report, for support staff and runbooks.

Exit codes (CONTRACT.md) follow the report's verdict (sync/verdict.py), which the JSON
carries as ``verdict`` beside ``ok``: 0 ``clean`` (every entry applied or moot and
reconciliation found no mismatch); 6 ``held`` (entries wait for a person: stale,
conflicts) or ``mismatches`` (a square-off not flat on main, a squared-off client that
moved on main meanwhile ...: the list, each with its next step); 4 ``rejected`` (main rejected
an entry); 5 ``incomplete`` (the replay could not run to its end: main unavailable);
7 ``busy`` (another process holds the store's replay lease: try again).  `sync replay`
and `sync report` judge a report by the same rules.  Imported only when such a
command runs.
"""

from __future__ import annotations

import logging

from rich.table import Table

from console.exitcodes import ExitCode
from console.runner import UsageProblem, emit_json, err, out, read_password, run
from console.service import Service
from console.styles import JOURNAL_STATE_STYLE
from sync import verdict as verdicts

_STYLE = JOURNAL_STATE_STYLE  # one table for the CLI and the screens


EXIT_OF = {
    verdicts.CLEAN: ExitCode.OK,
    verdicts.REJECTED: ExitCode.REJECTED,
    verdicts.INCOMPLETE: ExitCode.UNAVAILABLE,
    verdicts.HELD: ExitCode.HELD,
    verdicts.MISMATCHES: ExitCode.HELD,
    verdicts.BUSY: ExitCode.BUSY,
    verdicts.REFUSED: ExitCode.INTEGRITY,
}
BUSY_MESSAGE = "busy: another process holds the replay; try again"


def verdict_of(replay: dict | None, report: dict | None) -> str:
    return verdicts.verdict(report, replay["status"] if replay else None)


def exit_code_of(replay: dict | None, report: dict | None) -> int:
    return int(EXIT_OF[verdict_of(replay, report)])


def _judged(body: dict, replay: dict | None, report: dict | None) -> dict:
    """The JSON a script reads: ``ok`` and ``verdict`` first, agreeing with the exit code."""
    from console import eventlog

    v = verdict_of(replay, report)
    code = EXIT_OF[v]
    head: dict = {"ok": code is ExitCode.OK, "verdict": v, "exit_code": int(code)}
    failure = None
    said = str((replay or {}).get("message"))  # busy and refused are the replay's own answers
    if v == verdicts.BUSY:
        failure = ("busy", "replay_lease_held", f"{BUSY_MESSAGE} ({said})")
    elif (
        v == verdicts.REFUSED
    ):  # main refused the handshake: the audit chain does not extend what it witnessed
        failure = ("integrity", "replay_refused", said)
    elif v == verdicts.INCOMPLETE and replay is not None and replay["status"] == "stopped":
        failure = ("unavailable", "replay_stopped", replay["message"])
    if failure is not None:
        error_id = eventlog.new_error_id()
        logging.getLogger("lifeboat").warning(
            "%s", failure[2], extra={"event": "replay_" + failure[1], "error_id": error_id}
        )
        head["error"] = {
            "code": failure[0],
            "exit_code": int(code),
            "reason": failure[1],
            "message": failure[2],
            "error_id": error_id,
        }
    if report is not None:
        head["headline"] = verdicts.headline(report)
    return {**head, **{k: v for k, v in body.items() if k not in head}}


def _rows_table(title: str, rows: list[dict], local_label: str, *, next_step: bool) -> Table:
    """A report's mismatch rows (or its changes on main), one line each."""
    t = Table(title=title, show_lines=False)
    for col in ("kind", "client", "symbol", "id", local_label, "main", "detail") + (
        ("next step",) if next_step else ()
    ):
        t.add_column(col, overflow="fold")
    for x in rows:
        cells = [
            x["kind"],
            x.get("client_id") or "",
            x.get("symbol") or "",
            x.get("client_order_id") or x.get("order_id") or "",
            str(x.get("expected", x.get("local", ""))),
            str(x.get("main", "")),
            x.get("detail", ""),
        ]
        t.add_row(*cells, *([x.get("next_step") or ""] if next_step else []))
    return t


def print_report(report: dict) -> None:
    out.print(
        f"Reconciliation #{report.get('id')} at {report['created_at']} ({report['user']}, trading day "
        f"{report['trading_date']}): {verdicts.headline(report)}",
        markup=False,
    )
    t = Table(title="Journal entries", show_lines=False)
    for col in (
        "seq",
        "kind",
        "client",
        "symbol",
        "product",
        "client_order_id",
        "state",
        "main order",
        "reason",
    ):
        t.add_column(col, overflow="fold")
    for e in report["entries"]:
        style = _STYLE.get(e["state"], "")
        t.add_row(
            str(e["seq"]),
            e["kind"],
            e["client_id"],
            e["symbol"] or "",
            e["product"] or "",
            e["client_order_id"],
            f"[{style}]{e['state']}[/]" if style else e["state"],
            e["main_order_id"] or "",
            e["reason"] or "",
        )
    out.print(t)
    if report["mismatches"]:
        out.print(_rows_table("Mismatches", report["mismatches"], "expected / local", next_step=True))
    else:
        out.print("No mismatches: main holds what the journal meant.", markup=False)
    if report.get("moved_on_main"):
        out.print(
            _rows_table(
                "Changed on main during the outage (for information; the local book now shows main's)",
                report["moved_on_main"],
                "local",
                next_step=False,
            )
        )
    if report.get("for_a_person"):
        err.print(
            f"{report['for_a_person']} entr{'y' if report['for_a_person'] == 1 else 'ies'} held for a "
            f"supervisor: `lifeboat sync held`, then `sync release SEQ` or `sync discard SEQ`",
            markup=False,
        )
    n = len(report["mismatches"])
    if n:
        err.print(
            f"{n} mismatch{'' if n == 1 else 'es'} between the journal and main: see the list and each "
            f"one's next step",
            markup=False,
        )


def replay(g, as_json: bool) -> int:
    def action(svc: Service):
        async def go():
            res = (await svc.replay(read_password(g, required=False))).as_dict()
            rp, report = res["replay"], res["report"]
            if as_json:
                emit_json(_judged(res, rp, report))
            else:
                err.print(
                    f"{BUSY_MESSAGE} ({rp['message']})" if rp["status"] == "busy" else rp["message"],
                    markup=False,
                )
                if report is not None:
                    print_report(report)
            return exit_code_of(rp, report)

        return go()

    return run(g, action)


def report(g, as_json: bool) -> int:
    def action(svc: Service):
        rep = svc.last_report()
        if rep is None:
            backlog = svc.replay_backlog()
            message = "no reconciliation report yet" + (
                f"; {backlog} journal entr{'y waits' if backlog == 1 else 'ies wait'} for a replay"
                if backlog
                else ""
            )
            message += ": run `lifeboat sync replay`"
            code = ExitCode.UNAVAILABLE if backlog else ExitCode.OK
            if as_json:
                emit_json(
                    {
                        "ok": code is ExitCode.OK,
                        "verdict": verdicts.INCOMPLETE if backlog else None,
                        "exit_code": int(code),
                        "message": message,
                        "report": None,
                    }
                )
            err.print(message, markup=False)
            return int(code)
        if as_json:
            emit_json(_judged(rep, None, rep))
        else:
            print_report(rep)
        return exit_code_of(None, rep)

    return run(g, action)


def held(g, as_json: bool) -> int:
    def action(svc: Service):
        rows = svc.held_entries()
        if as_json:
            emit_json(rows)
        elif not rows:
            out.print("Nothing held for a decision.", markup=False)
        else:
            t = Table(title="Held for a supervisor")
            for col in (
                "seq",
                "kind",
                "client",
                "symbol",
                "client_order_id",
                "state",
                "by",
                "created",
                "reason",
            ):
                t.add_column(col, overflow="fold")
            for e in rows:
                t.add_row(
                    str(e["seq"]),
                    e["kind"],
                    e["client_id"],
                    e["symbol"] or "",
                    e["client_order_id"],
                    e["state"],
                    e["user_id"],
                    e["created_at"],
                    e["reason"] or "",
                )
            out.print(t)
        return int(ExitCode.HELD) if rows else 0

    return run(g, action)


def decide(g, seq: int, *, release: bool, as_json: bool) -> int:
    def action(svc: Service):
        if seq <= 0:
            raise UsageProblem(f"SEQ must be a journal sequence number (> 0), not {seq}")

        async def go():
            password = read_password(g)
            row = await (
                svc.release_held(seq, password=password)
                if release
                else svc.discard_held(seq, password=password)
            )
            if as_json:
                emit_json(row)
            else:
                what = (
                    "released: it is sent on the next replay"
                    if release
                    else "discarded: it will never be sent"
                )
                out.print(
                    f"entry {row['seq']} ({row['kind']} {row['client_id']} {row['symbol'] or ''}, "
                    f"{row['client_order_id']}) {what}",
                    markup=False,
                )
            return 0

        return go()

    return run(g, action)
