"""`lifeboat sync replay|report|held|release|discard`: the journal replay and its
reconciliation report, for support staff and runbooks.

Exit codes (CONTRACT.md): 0 replayed and nothing waits for a person; 4 main rejected
an entry in this pass; 5 the replay could not run to its end now (main unavailable,
or another process holds the store's replay lease: the message names it); 6 held
for a person's decision (stale entries, conflicts) - the most specific wins in the
order 5, 6, 4.  Imported only when such a command runs.
"""

from __future__ import annotations

from rich.table import Table

from console.cmd_book import UsageProblem, emit_json, err, out, read_password, run
from console.exitcodes import ExitCode
from console.service import Service

_STYLE = {"applied": "green", "moot": "dim", "rejected": "red", "conflict": "bold red", "held": "bold yellow",
          "pending": "cyan", "sent": "cyan"}


def exit_code_of(replay: dict, report: dict | None) -> int:
    if replay["status"] in ("busy", "stopped"):
        return int(ExitCode.UNAVAILABLE)
    if report is not None and report.get("for_a_person"):
        return int(ExitCode.HELD)
    if any(o["state"] == "rejected" for o in replay.get("outcomes", [])):
        return int(ExitCode.REJECTED)
    return int(ExitCode.OK)


def print_report(report: dict) -> None:
    c = report["counts"]
    out.print(f"Reconciliation #{report.get('id')} at {report['created_at']} ({report['user']}, trading day "
              f"{report['trading_date']}): " + ", ".join(f"{k} {v}" for k, v in c.items() if v) +
              f"; local book {'equals' if report['local_equals_main'] else 'DIFFERS FROM'} main", markup=False)
    t = Table(title="Journal entries", show_lines=False)
    for col in ("seq", "kind", "client", "symbol", "product", "client_order_id", "state", "main order", "reason"):
        t.add_column(col, overflow="fold")
    for e in report["entries"]:
        style = _STYLE.get(e["state"], "")
        t.add_row(str(e["seq"]), e["kind"], e["client_id"], e["symbol"] or "", e["product"] or "",
                  e["client_order_id"], f"[{style}]{e['state']}[/]" if style else e["state"],
                  e["main_order_id"] or "", e["reason"] or "")
    out.print(t)
    if report["mismatches"]:
        m = Table(title="Mismatches", show_lines=False)
        for col in ("kind", "client", "symbol", "id", "expected / local", "main", "detail"):
            m.add_column(col, overflow="fold")
        for x in report["mismatches"]:
            m.add_row(x["kind"], x.get("client_id") or "", x.get("symbol") or "",
                      x.get("client_order_id") or x.get("order_id") or "",
                      str(x.get("expected", x.get("local", ""))), str(x.get("main", "")), x.get("detail", ""))
        out.print(m)
    else:
        out.print("No mismatches: main holds what the journal meant.", markup=False)
    if report.get("for_a_person"):
        err.print(f"{report['for_a_person']} entr{'y' if report['for_a_person'] == 1 else 'ies'} held for a "
                  f"supervisor: `lifeboat sync held`, then `sync release SEQ` or `sync discard SEQ`", markup=False)


def replay(g, as_json: bool) -> int:
    def action(svc: Service):
        async def go():
            res = await svc.replay(read_password(g, required=False))
            rp, report = res["replay"], res["report"]
            if as_json:
                emit_json(res)
            else:
                err.print(rp["message"], markup=False)
                if report is not None:
                    print_report(report)
            return exit_code_of(rp, report)

        return go()

    return run(g, action)


def report(g, as_json: bool) -> int:
    def action(svc: Service):
        rep = svc.last_report()
        if rep is None:
            if as_json:
                emit_json(None)
            err.print("no reconciliation report yet: run `lifeboat sync replay`", markup=False)
            return 0
        if as_json:
            emit_json(rep)
        else:
            print_report(rep)
        return int(ExitCode.HELD) if rep.get("for_a_person") else 0

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
            for col in ("seq", "kind", "client", "symbol", "client_order_id", "state", "by", "created", "reason"):
                t.add_column(col, overflow="fold")
            for e in rows:
                t.add_row(str(e["seq"]), e["kind"], e["client_id"], e["symbol"] or "", e["client_order_id"],
                          e["state"], e["user_id"], e["created_at"], e["reason"] or "")
            out.print(t)
        return int(ExitCode.HELD) if rows else 0

    return run(g, action)


def decide(g, seq: int, *, release: bool, as_json: bool) -> int:
    def action(svc: Service):
        if seq <= 0:
            raise UsageProblem(f"SEQ must be a journal sequence number (> 0), not {seq}")

        async def go():
            password = read_password(g)
            row = await (svc.release_held(seq, password=password) if release
                         else svc.discard_held(seq, password=password))
            if as_json:
                emit_json(row)
            else:
                what = "released: it is sent on the next replay" if release else "discarded: it will never be sent"
                out.print(f"entry {row['seq']} ({row['kind']} {row['client_id']} {row['symbol'] or ''}, "
                          f"{row['client_order_id']}) {what}", markup=False)
            return 0

        return go()

    return run(g, action)
