"""Implementations of the trading commands: squareoff, order place|modify|cancel,
killswitch, mode, policy, journal.

Why its own module: these commands share one shape (validate flags -> decide the
mode -> confirm -> password only when needed -> act through the service -> print
-> acknowledge) that the read-only book commands do not have.  The order matters:
the answer is printed only after the journal commit, and the entries are
acknowledged only after the answer is out, so an answer a script saw is always
durable, and a crash between the two is visible as "committed, never
acknowledged".

Exit codes (console.exitcodes): 0 done or durably journaled; 2 bad flags or
values (negative quantity, no --yes on a non-terminal, --symbol without
--client ...); 3 wrong password, throttled, outside your scope, not a supervisor;
4 refused by policy or a risk check (unknown client or symbol included) or by the
main system, or any leg of a square-off rejected; 5 main down and backup mode not
possible, or main stopped answering in the middle of an online square-off (no leg
rejected; legs 'unknown' or 'not_sent', outcome 'incomplete'); 1 the journal write
failed (nothing accepted).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from console.runner import UsageProblem, emit_json, err, out, read_password, run
from console.service import ActionResult, Service, sends

# A seam for tests (tests/launcher.py): called just before the acknowledgement stamp of a
# result with journaled entries, so a test can kill the process between the answer and the
# stamp.  None in production.
before_ack: Callable[[], None] | None = None


_MAX_PRICE = Decimal("1000000000")  # far above any listed price; the wire carries prices as JSON numbers
_MAX_PRICE_DECIMALS = 4  # the finest tick listed is 0.0025


def _shown(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{value[:20]!r}... ({len(value)} characters)"


def _decimal(value: str | None, flag: str) -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise UsageProblem(f"{flag} {_shown(value)} is not a number") from None
    if not d.is_finite() or d <= 0:
        raise UsageProblem(f"{flag} must be a positive number, not {_shown(value)}")
    if d > _MAX_PRICE:
        raise UsageProblem(f"{flag} {_shown(value)} is out of range (at most {_MAX_PRICE:,})")
    exponent = d.as_tuple().exponent  # an int: d is finite
    if isinstance(exponent, int) and exponent < -_MAX_PRICE_DECIMALS:
        raise UsageProblem(f"{flag} {_shown(value)} has more than {_MAX_PRICE_DECIMALS} decimal places")
    return d


def _text(value: str | None, flag: str, longest: int) -> str | None:
    """An id or a symbol as typed: not empty, not longer than the wire allows."""
    if value is None:
        return None
    if not value.strip():
        raise UsageProblem(f"{flag} is empty")
    if len(value) > longest:
        raise UsageProblem(f"{flag} {_shown(value)} is too long (at most {longest} characters)")
    return value


def _price_flags(order_type: str, price: Decimal | None, trigger: Decimal | None) -> None:
    """Which of --price and --trigger an order type takes (main's rule: contract.ordershape)."""
    from contract.enums import OrderType
    from contract.ordershape import PRICED, TRIGGERED

    kind = OrderType(order_type)  # the flag's choices are the order types
    needs_price, needs_trigger = kind in PRICED, kind in TRIGGERED
    if needs_price and price is None:
        raise UsageProblem(f"--type {order_type} needs --price")
    if needs_trigger and trigger is None:
        raise UsageProblem(f"--type {order_type} needs --trigger")
    if price is not None and not needs_price:
        raise UsageProblem(f"--type {order_type} takes no --price")
    if trigger is not None and not needs_trigger:
        raise UsageProblem(f"--type {order_type} takes no --trigger")


def _positive(value: int | None, flag: str) -> int | None:
    if value is not None and value <= 0:
        raise UsageProblem(f"{flag} must be a positive whole number, not {value}")
    return value


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageProblem(f"refusing to {what} without confirmation: pass --yes (not a terminal)")
    answer = input(f"{what}? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise UsageProblem("not confirmed; nothing was done")


async def _password_for(svc: Service, g) -> str | None:
    if g.password_stdin:  # known before the mode: the offline check's scrypt runs beside the probe
        password = read_password(g)
        svc.start_password_check(password, early=getattr(g, "early", None))
        await svc.decide_mode()
        return password
    decision = await svc.decide_mode()
    return read_password(g, required=not decision.sends)


def _finish(svc: Service, res: ActionResult, as_json: bool, human) -> int:
    """Print the answer, then acknowledge the journaled entries."""
    if as_json:
        emit_json(res.as_dict())
    else:
        human(res)
    sys.stdout.flush()
    if before_ack is not None and res.journal_seqs:
        before_ack()
    svc.acknowledge(res)
    return res.exit_code


# --------------------------------------------------------------------------- squareoff


def _print_legs(res: ActionResult) -> None:
    from rich.table import Table

    t = Table(
        title=f"square-off ({res.mode}{', dry run' if res.dry_run else ''}): {len(res.legs)} legs",
        header_style="bold",
    )
    for c in ("client", "exchange", "symbol", "product", "side", "quantity", "client_order_id", "outcome"):
        t.add_column(c, justify="right" if c == "quantity" else "left")
    for leg in res.legs:
        t.add_row(
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
    if res.cancels:
        out.print(
            f"open orders cancelled{' (planned)' if res.dry_run else ''}: {len(res.cancels)}", markup=False
        )
    if not sends(res.mode) and not res.dry_run:
        err.print(journaled_line(res.mode), markup=False)


def journaled_line(mode: str) -> str:
    """What a person is told of an action journaled instead of sent (true with a DR site too:
    in split brain main is not down, and in RECOVERING it is up)."""
    why = "the journal is being replayed first" if mode == "RECOVERING" else "no site can take it now"
    return f"journaled durably in {mode} mode ({why}); sent when a site takes actions again"


def squareoff(
    g,
    *,
    client: str | None,
    symbol: str | None,
    all_: bool,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    keep_orders: bool,
) -> int:
    def action(svc: Service):
        _text(client, "--client", 32)
        _text(symbol, "--symbol", 40)
        if bool(client) == bool(all_):
            raise UsageProblem("give either --client C (optionally with --symbol S) or --all")
        if symbol and not client:
            raise UsageProblem("--symbol needs --client")
        if not dry_run:
            _confirm(
                yes,
                f"square off {'client ' + client if client else 'your whole scope'}"
                f"{' in ' + symbol if symbol else ''}",
            )

        async def go():
            password = await _password_for(svc, g)
            res = await svc.squareoff(
                client_id=client, symbol=symbol, keep_orders=keep_orders, dry_run=dry_run, password=password
            )
            return _finish(svc, res, as_json, _print_legs)

        return go()

    return run(g, action)


# --------------------------------------------------------------------------- one order


def _print_order(res: ActionResult) -> None:
    o = res.order or {}
    out.print(
        f"{res.action} {o.get('outcome')}: client_order_id {o.get('client_order_id')}"
        f"{' order ' + o['order_id'] if o.get('order_id') else ''} ({res.mode})"
        f"{': ' + o['status_reason'] if o.get('status_reason') else ''}",
        markup=False,
    )


def place(
    g,
    *,
    client: str,
    exchange: str,
    symbol: str,
    side: str,
    quantity: int,
    product: str,
    order_type: str,
    price: str | None,
    trigger: str | None,
    validity: str,
    disclosed: int | None,
    yes: bool,
    as_json: bool,
) -> int:
    def action(svc: Service):
        from contract.enums import OrderType, Side
        from sync.trading.policy import OrderTicket

        _text(client, "--client", 32)
        _text(symbol, "--symbol", 40)
        _positive(quantity, "--quantity")
        if disclosed is not None and disclosed < 0:
            raise UsageProblem("--disclosed must not be negative")
        p, t = _decimal(price, "--price"), _decimal(trigger, "--trigger")
        _price_flags(order_type.upper(), p, t)
        ticket = OrderTicket(
            client_id=client,
            exchange=exchange.upper(),
            symbol=symbol.upper(),
            side=Side(side.upper()),
            quantity=quantity,
            product=product.upper(),
            order_type=OrderType(order_type.upper()),
            price=p,
            trigger_price=t,
        )
        _confirm(yes, f"{ticket.side.value} {quantity} {ticket.symbol} for {client}")

        async def go():
            password = await _password_for(svc, g)
            res = await svc.place(
                ticket, validity=validity.upper(), disclosed_quantity=disclosed, password=password
            )
            return _finish(svc, res, as_json, _print_order)

        return go()

    return run(g, action)


def _order_ref(order_id: str | None, client_order_id: str | None) -> None:
    _text(order_id, "--order-id", 64)
    _text(client_order_id, "--client-order-id", 64)
    if bool(order_id) == bool(client_order_id):
        raise UsageProblem("give exactly one of --order-id or --client-order-id")


def modify(g, *, order_id, client_order_id, quantity, price, trigger, yes: bool, as_json: bool) -> int:
    def action(svc: Service):
        _order_ref(order_id, client_order_id)
        _positive(quantity, "--quantity")
        p, t = _decimal(price, "--price"), _decimal(trigger, "--trigger")
        if quantity is None and p is None and t is None:
            raise UsageProblem("nothing to change: give --quantity, --price or --trigger")
        _confirm(yes, f"modify order {order_id or client_order_id}")

        async def go():
            password = await _password_for(svc, g)
            res = await svc.modify(
                order_id=order_id,
                client_order_id=client_order_id,
                quantity=quantity,
                price=p,
                trigger_price=t,
                password=password,
            )
            return _finish(svc, res, as_json, _print_order)

        return go()

    return run(g, action)


def cancel(g, *, order_id, client_order_id, yes: bool, as_json: bool) -> int:
    def action(svc: Service):
        _order_ref(order_id, client_order_id)
        _confirm(yes, f"cancel order {order_id or client_order_id}")

        async def go():
            password = await _password_for(svc, g)
            res = await svc.cancel(order_id=order_id, client_order_id=client_order_id, password=password)
            return _finish(svc, res, as_json, _print_order)

        return go()

    return run(g, action)


# --------------------------------------------------------------------------- kill switch, mode, policy, journal


def killswitch(g, *, off: bool, yes: bool, as_json: bool) -> int:
    # `yes` is accepted and ignored: an emergency stop never waits for a prompt.
    def action(svc: Service):

        async def go():
            password = read_password(g) if off else await _password_for(svc, g)
            res = await svc.killswitch(off=off, password=password)

            def human(r: ActionResult):
                if off:
                    out.print(f"kill switch released by {r.user}", markup=False)
                else:
                    out.print(
                        f"kill switch ON ({r.mode}): new exposure blocked; "
                        f"{len(r.cancels)} open orders {'cancelled' if r.mode == 'ONLINE' else 'journaled for cancel'}",
                        markup=False,
                    )

            return _finish(svc, res, as_json, human)

        return go()

    return run(g, action)


def mode(g, *, what: str, target: str | None, as_json: bool) -> int:
    def action(svc: Service):
        if what not in ("show", "force", "auto"):
            raise UsageProblem(f"unknown mode action {what!r}: show, force MODE, or auto")
        if what == "force" and not target:
            raise UsageProblem("mode force needs a MODE: ONLINE, BACKUP or RECOVERING")
        if what != "force" and target:
            raise UsageProblem(f"mode {what} takes no MODE")

        async def go():
            if what == "show":
                st = svc.mode_show().as_dict()
                decision = await svc.decide_mode()
                st["effective_mode"] = decision.mode
            else:
                changed = await svc.mode_force(target if what == "force" else None, password=read_password(g))
                st = changed.as_dict()
            if as_json:
                emit_json(st)
            else:
                forced = (
                    f"forced {st['forced_mode']} by {st['forced_by']}" if st["forced_mode"] else "automatic"
                )
                eff = f"mode {st['effective_mode']}, " if "effective_mode" in st else ""
                out.print(f"{eff}{forced}", markup=False)
            return 0

        return go()

    return run(g, action)


def policy(g, *, what: str, allow: bool | None, as_json: bool) -> int:
    def action(svc: Service):
        if what not in ("show", "set"):
            raise UsageProblem(f"unknown policy action {what!r}: show or set")
        if what == "set" and allow is None:
            raise UsageProblem("policy set needs --allow-new-exposure or --reduce-only")

        async def go():
            st = (
                svc.policy_show()
                if what == "show"
                else await svc.policy_set(allow_new_exposure=bool(allow), password=read_password(g))
            )
            if as_json:
                emit_json(st.as_dict())
            else:
                out.print(
                    f"backup policy: {'reduce-only' if st.reduce_only else 'new exposure ALLOWED'}; "
                    f"kill switch {'ON' if st.killswitch else 'off'}"
                    f"{'; set by ' + st.updated_by if st.updated_by else ''}",
                    markup=False,
                )
            return 0

        return go()

    return run(g, action)


def journal_view(g, *, unfinished: bool, as_json: bool) -> int:
    def action(svc: Service):
        rows = svc.journal_entries(unfinished_only=unfinished)
        if as_json:
            emit_json(rows)
            return 0
        from rich.table import Table

        t = Table(title=f"journal: {len(rows)} entries", header_style="bold")
        for c in ("seq", "kind", "client_order_id", "client", "symbol", "state", "acknowledged"):
            t.add_column(c)
        for r in rows:
            t.add_row(
                str(r["seq"]),
                r["kind"],
                r["client_order_id"],
                r["client_id"],
                r["symbol"] or "",
                r["state"],
                "yes" if r["acknowledged"] else "NO (committed, never acknowledged)",
            )
        out.print(t)
        return 0

    return run(g, action)
