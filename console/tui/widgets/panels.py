"""Column layouts of the desk's panels and the row shapes they show.

Why separate from the grid: the grid knows nothing about trading; this module says which
fields a dealer sees, in which order, with which colours (MTM red when negative).
"""

from __future__ import annotations

from decimal import Decimal

from rich.style import Style

from console.tui.widgets.grid import Column

_RED, _GREEN = Style(color="red"), Style(color="green")


def money(v) -> str:
    return f"{Decimal(v):,.2f}"


def signed_tone(v):
    v = Decimal(v)
    return _RED if v < 0 else (_GREEN if v > 0 else None)


def _v(x):
    return getattr(x, "value", x)


WATCH = [
    Column("exchange", "Exch", 4),
    Column("symbol", "Symbol", 14),
    Column("last_price", "LTP", 11, "right", money),
    Column("change", "Chg", 9, "right", money, signed_tone),
    Column("change_pct", "Chg%", 7, "right", lambda v: f"{v:.2f}", signed_tone),
    Column("lot_size", "Lot", 5, "right"),
    Column("band", "Band", 19),
]

POSITIONS = [
    Column("client_id", "Client", 8),
    Column("exchange", "Exch", 4),
    Column("symbol", "Symbol", 14),
    Column("product", "Prod", 4),
    Column("net_quantity", "Net qty", 8, "right", str, signed_tone),
    Column("average_price", "Avg", 11, "right", money),
    Column("last_price", "LTP", 11, "right", money),
    Column("mtm", "MTM", 13, "right", money, signed_tone),
]

ORDERS = [
    Column("order_id", "Order", 12),
    Column("client_id", "Client", 8),
    Column("symbol", "Symbol", 14),
    Column("side", "Side", 4),
    Column("quantity", "Qty", 7, "right"),
    Column("filled_quantity", "Filled", 7, "right"),
    Column("order_type", "Type", 6),
    Column("price", "Price", 10, "right", money),
    Column("status", "Status", 15),
]

TRADES = [
    Column("trade_id", "Trade", 12),
    Column("order_id", "Order", 12),
    Column("client_id", "Client", 8),
    Column("symbol", "Symbol", 14),
    Column("side", "Side", 4),
    Column("quantity", "Qty", 7, "right"),
    Column("price", "Price", 10, "right", money),
    Column("traded_at", "Time", 8),
]

JOURNAL = [
    Column("seq", "Seq", 5, "right"),
    Column("kind", "Kind", 10),
    Column("client_id", "Client", 8),
    Column("symbol", "Symbol", 14),
    Column("state", "State", 9),
    Column("client_order_id", "Client order id", 28),
    Column("detail", "Detail", 30),
]


def position_row(p) -> dict:
    return {"client_id": p.client_id, "exchange": _v(p.exchange), "symbol": p.symbol, "product": _v(p.product),
            "net_quantity": p.net_quantity, "average_price": p.average_price, "last_price": p.last_price,
            "mtm": p.mtm, "realised_pnl": p.realised_pnl}


def position_quote(row: dict) -> tuple[str, str]:
    return (row["exchange"], row["symbol"])


def position_with_quote(row: dict, ltp) -> dict:
    """A position as shown at last price ``ltp``: LTP and MTM follow the tick."""
    return {**row, "last_price": ltp, "mtm": mtm(row, ltp)}


def mtm(row: dict, ltp) -> Decimal:
    return Decimal(row["realised_pnl"]) + (Decimal(ltp) - Decimal(row["average_price"])) * row["net_quantity"]


def order_row(o) -> dict:
    return {"order_id": o.order_id, "client_order_id": o.client_order_id, "client_id": o.client_id,
            "exchange": _v(o.exchange), "symbol": o.symbol, "side": _v(o.side), "quantity": o.quantity,
            "filled_quantity": o.filled_quantity, "order_type": _v(o.order_type), "price": o.price,
            "trigger_price": o.trigger_price, "product": _v(o.product), "status": _v(o.status)}


def trade_row(t) -> dict:
    return {"trade_id": t.trade_id, "order_id": t.order_id, "client_id": t.client_id, "symbol": t.symbol,
            "side": _v(t.side), "quantity": t.quantity, "price": t.price, "traded_at": f"{t.traded_at:%H:%M:%S}"}


def watch_row(inst, ltp=None) -> dict:
    ltp = Decimal(ltp if ltp is not None else inst.last_price)
    prev = Decimal(inst.previous_close)
    chg = ltp - prev
    return {"exchange": _v(inst.exchange), "symbol": inst.symbol, "last_price": ltp, "change": chg,
            "change_pct": float(chg / prev * 100) if prev else 0.0, "lot_size": inst.lot_size,
            "band": f"{inst.lower_band}-{inst.upper_band}"}


def journal_row(e: dict) -> dict:
    detail = e.get("reason") or e.get("outcome") or ""
    return {"seq": e.get("seq"), "kind": _v(e.get("kind")), "client_id": e.get("client_id"),
            "symbol": e.get("symbol"), "state": _v(e.get("state")), "client_order_id": e.get("client_order_id"),
            "detail": str(detail)}
