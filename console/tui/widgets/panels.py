"""Column layouts of the desk's panels and the row shapes they show.

Why separate from the grid: the grid knows nothing about trading; this module says which
fields a dealer sees, in which order, with which colours (MTM red when negative).

Prices are shown at the instrument's tick precision (``price_text``: at least 2 decimals,
more only for a finer tick, so 0.05 gives ``2,965.85``, never the store's 4 places); each
row carries its instrument's ``tick`` for that.  Symbols are never cut: the symbol column
widens to the longest symbol in the panel (``Column.fit``).

While the stream is down, the LTP columns (market watch, net positions) carry the price's
age (``Column.aged``; console/tui/prices.py says how old).

Net positions: main sends net quantity, average, last price, realised P&L, MTM and the
day's buy and sell quantities.  Derived here (see ``position_row``): unrealised P&L and the
buy and sell averages.
"""

from __future__ import annotations

from decimal import Decimal

from rich.style import Style

from console.tui.widgets.grid import Column
from contract import money as pnl
from contract.enums import value_of

_RED, _GREEN = Style(color="red"), Style(color="green")
_CENT = Decimal("0.01")


def money(v) -> str:
    return f"{Decimal(v):,.2f}"


def decimals(tick) -> int:
    """Decimal places of a price on an instrument with tick size ``tick``: 2, or more for a
    finer tick (0.05 -> 2, 1.00 -> 2, 0.0025 -> 4).  No tick known: 2."""
    if tick is None:
        return 2
    exp = Decimal(tick).normalize().as_tuple().exponent
    return max(2, -exp if isinstance(exp, int) else 2)


def price_text(v, tick=None, *, grouped: bool = True) -> str:
    """A price at its instrument's tick precision (``grouped``: with thousands separators;
    without, it reads back into a form's price field)."""
    d = decimals(tick)
    return f"{Decimal(v):,.{d}f}" if grouped else f"{Decimal(v):.{d}f}"


def _price(v, row: dict) -> str:
    return price_text(v, row.get("tick"))


def signed_tone(v):
    v = Decimal(v)
    return _RED if v < 0 else (_GREEN if v > 0 else None)


WATCH = [
    Column("exchange", "Exch", 4),
    Column("symbol", "Symbol", 14, fit=True),
    Column("last_price", "LTP", 11, "right", row_fmt=_price, aged=True),
    Column("change", "Chg", 9, "right", tone=signed_tone, row_fmt=_price),
    Column("change_pct", "Chg%", 7, "right", lambda v: f"{v:.2f}", signed_tone),
    Column("lot_size", "Lot", 5, "right"),
    Column(
        "band",
        "Band",
        21,
        row_fmt=lambda v, row: "-".join(price_text(x, row.get("tick"), grouped=False) for x in v),
    ),
]

POSITIONS = [
    Column("client_id", "Client", 8),
    Column("exchange", "Exch", 4),
    Column("symbol", "Symbol", 14, fit=True),
    Column("product", "Prod", 4),
    Column("net_quantity", "Net qty", 8, "right", str, signed_tone),
    Column("average_price", "Avg", 11, "right", money),
    Column("last_price", "LTP", 11, "right", row_fmt=_price, aged=True),
    Column("mtm", "MTM", 13, "right", money, signed_tone),
    Column("realised_pnl", "Realised", 12, "right", money, signed_tone),
    Column("unrealised_pnl", "Unrealised", 12, "right", money, signed_tone),
    Column("buy_quantity", "Buy qty", 8, "right"),
    Column("buy_average", "Buy avg", 11, "right", money),
    Column("sell_quantity", "Sell qty", 8, "right"),
    Column("sell_average", "Sell avg", 11, "right", money),
]

ORDERS = [
    Column("order_id", "Order", 12),
    Column("client_id", "Client", 8),
    Column("exchange", "Exch", 4),
    Column("symbol", "Symbol", 14, fit=True),
    Column("side", "Side", 4),
    Column("product", "Prod", 4),
    Column("quantity", "Qty", 7, "right"),
    Column("filled_quantity", "Filled", 7, "right"),
    Column("order_type", "Type", 6),
    Column("price", "Price", 10, "right", row_fmt=_price),
    Column("trigger_price", "Trigger", 10, "right", row_fmt=_price),
    Column("average_price", "Avg traded", 10, "right", row_fmt=_price),
    Column("status", "Status", 15),
    Column("time", "Time UTC", 8),
]

TRADES = [
    Column("trade_id", "Trade", 12),
    Column("order_id", "Order", 12),
    Column("client_id", "Client", 8),
    Column("exchange", "Exch", 4),
    Column("symbol", "Symbol", 14, fit=True),
    Column("side", "Side", 4),
    Column("product", "Prod", 4),
    Column("quantity", "Qty", 7, "right"),
    Column("price", "Price", 10, "right", row_fmt=_price),
    Column("traded_at", "Time UTC", 8),
]

JOURNAL = [
    Column("seq", "Seq", 5, "right"),
    Column("kind", "Kind", 10),
    Column("client_id", "Client", 8),
    Column("symbol", "Symbol", 14, fit=True),
    Column("state", "State", 9),
    Column("client_order_id", "Client order id", 28),
    Column("detail", "Detail", 30),
]


def fill_totals(trades) -> dict[tuple, list]:
    """The day's fills by position key: [buy qty, buy value, sell qty, sell value]."""
    out: dict[tuple, list] = {}
    for t in trades:
        add_fill(out, t)
    return out


def add_fill(totals: dict, t) -> tuple:
    key = (t.client_id, value_of(t.exchange), t.symbol, value_of(t.product))
    agg = totals.setdefault(key, [0, Decimal(0), 0, Decimal(0)])
    if value_of(t.side) == "BUY":
        agg[0] += t.quantity
        agg[1] += t.quantity * Decimal(t.price)
    else:
        agg[2] += t.quantity
        agg[3] += t.quantity * Decimal(t.price)
    return key


def side_averages(p, fills) -> tuple[Decimal | None, Decimal | None]:
    """(buy average, sell average) of a position; None where it cannot be known.

    Main sends the day's buy and sell quantities but not their values.  The fills in the
    local trade book give the value of what traded today; a quantity main counts that no
    fill explains is the position carried in at the start of day (main counts a carried
    long as bought, a carried short as sold, at the carried average).  Its value follows
    from the average-cost identity main's arithmetic keeps (mainsim/positions.py):
    ``buy value - sell value = net quantity x average - realised P&L``.  So with a carried
    part on one side only, that side's value is the identity's remainder; with no carried
    part, both are the fills'.  Carried quantities on both sides, or fills the position does
    not count yet (a trade seen before its position update): None, shown blank."""
    bq, bv, sq, sv = fills or (0, Decimal(0), 0, Decimal(0))
    carried_buy, carried_sell = p.buy_quantity - bq, p.sell_quantity - sq
    if carried_buy < 0 or carried_sell < 0 or (carried_buy and carried_sell):
        return None, None
    book = Decimal(p.average_price) * p.net_quantity - Decimal(p.realised_pnl)  # buy value - sell value
    if carried_buy:
        bv = book + sv
    elif carried_sell:
        sv = bv - book
    buy = (bv / p.buy_quantity).quantize(_CENT) if p.buy_quantity else None
    sell = (sv / p.sell_quantity).quantize(_CENT) if p.sell_quantity else None
    return buy, sell


def position_row(p, tick=None, fills=None) -> dict:
    """A net position as the desk shows it.  Unrealised P&L is MTM less realised, which is
    ``(last price - average) x net quantity``: what closing the open quantity at the last
    price would add; a flat row's MTM is all realised.  Buy and sell averages: side_averages."""
    buy_avg, sell_avg = side_averages(p, fills)
    return {
        "client_id": p.client_id,
        "exchange": value_of(p.exchange),
        "symbol": p.symbol,
        "product": value_of(p.product),
        "net_quantity": p.net_quantity,
        "average_price": p.average_price,
        "last_price": p.last_price,
        "mtm": p.mtm,
        "realised_pnl": p.realised_pnl,
        "unrealised_pnl": Decimal(p.mtm) - Decimal(p.realised_pnl),
        "buy_quantity": p.buy_quantity,
        "sell_quantity": p.sell_quantity,
        "buy_average": buy_avg,
        "sell_average": sell_avg,
        "tick": tick,
    }


def position_quote(row: dict) -> tuple[str, str]:
    return (row["exchange"], row["symbol"])


def position_with_quote(row: dict, ltp) -> dict:
    """A position as shown at last price ``ltp``: LTP, MTM and unrealised P&L follow the tick."""
    open_pnl = pnl.unrealised(row["net_quantity"], row["average_price"], ltp)
    return {
        **row,
        "last_price": ltp,
        "mtm": Decimal(row["realised_pnl"]) + open_pnl,
        "unrealised_pnl": open_pnl,
    }


def _hms(at) -> str:
    return f"{at:%H:%M:%S}" if at is not None else ""


def order_row(o, tick=None) -> dict:
    return {
        "order_id": o.order_id,
        "client_order_id": o.client_order_id,
        "client_id": o.client_id,
        "exchange": value_of(o.exchange),
        "symbol": o.symbol,
        "side": value_of(o.side),
        "quantity": o.quantity,
        "filled_quantity": o.filled_quantity,
        "order_type": value_of(o.order_type),
        "price": o.price,
        "trigger_price": o.trigger_price,
        "product": value_of(o.product),
        "status": value_of(o.status),
        "average_price": o.average_price if o.filled_quantity else None,
        "time": _hms(o.created_at),
        "tick": tick,
    }


def trade_row(t, tick=None) -> dict:
    return {
        "trade_id": t.trade_id,
        "order_id": t.order_id,
        "client_id": t.client_id,
        "exchange": value_of(t.exchange),
        "symbol": t.symbol,
        "side": value_of(t.side),
        "product": value_of(t.product),
        "quantity": t.quantity,
        "price": t.price,
        "traded_at": _hms(t.traded_at),
        "tick": tick,
    }


def watch_row(inst, ltp=None) -> dict:
    ltp = Decimal(ltp if ltp is not None else inst.last_price)
    prev = Decimal(inst.previous_close)
    chg = ltp - prev
    return {
        "exchange": value_of(inst.exchange),
        "symbol": inst.symbol,
        "last_price": ltp,
        "change": chg,
        "change_pct": float(chg / prev * 100) if prev else 0.0,
        "lot_size": inst.lot_size,
        "band": (inst.lower_band, inst.upper_band),
        "tick": inst.tick_size,
    }


def journal_row(e: dict) -> dict:
    detail = e.get("reason") or e.get("outcome") or ""
    return {
        "seq": e.get("seq"),
        "kind": value_of(e.get("kind")),
        "client_id": e.get("client_id"),
        "symbol": e.get("symbol"),
        "state": value_of(e.get("state")),
        "client_order_id": e.get("client_order_id"),
        "detail": str(detail),
    }
