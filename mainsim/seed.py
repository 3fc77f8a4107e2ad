"""Deterministic demo data for a given seed: a desk of three dealers and their
clients, a market of NSE/BSE equities and NFO futures, open positions, resting
orders and per-client limits.  Same seed (and trading date) -> identical data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from contract import wire
from contract.wire import Exchange, OrderStatus, OrderType, Product, Side, Validity
from mainsim.tradingday import market_open_utc

DEALERS = ("dealer1", "dealer2", "dealer3")
USERS = (
    ("dealer1", wire.Role.DEALER),
    ("dealer2", wire.Role.DEALER),
    ("dealer3", wire.Role.DEALER),
    ("super1", wire.Role.SUPERVISOR),
    ("viewer1", wire.Role.VIEWER),
)
DEMO_PASSWORD = "demo"

# symbol, company, approximate price (INR)
EQUITIES = [
    ("RELIANCE", "Reliance Industries", 2900),
    ("TCS", "Tata Consultancy Services", 3900),
    ("HDFCBANK", "HDFC Bank", 1650),
    ("INFY", "Infosys", 1550),
    ("ICICIBANK", "ICICI Bank", 1150),
    ("HINDUNILVR", "Hindustan Unilever", 2450),
    ("ITC", "ITC", 430),
    ("SBIN", "State Bank of India", 820),
    ("BHARTIARTL", "Bharti Airtel", 1400),
    ("KOTAKBANK", "Kotak Mahindra Bank", 1750),
    ("LT", "Larsen & Toubro", 3600),
    ("AXISBANK", "Axis Bank", 1200),
    ("BAJFINANCE", "Bajaj Finance", 7000),
    ("ASIANPAINT", "Asian Paints", 2900),
    ("MARUTI", "Maruti Suzuki", 12500),
    ("HCLTECH", "HCL Technologies", 1450),
    ("SUNPHARMA", "Sun Pharmaceutical", 1550),
    ("TITAN", "Titan Company", 3400),
    ("ULTRACEMCO", "UltraTech Cement", 10500),
    ("WIPRO", "Wipro", 480),
    ("NESTLEIND", "Nestle India", 2500),
    ("ONGC", "Oil & Natural Gas Corp", 270),
    ("NTPC", "NTPC", 360),
    ("POWERGRID", "Power Grid Corp", 310),
    ("TATAMOTORS", "Tata Motors", 980),
    ("TATASTEEL", "Tata Steel", 165),
    ("JSWSTEEL", "JSW Steel", 900),
    ("ADANIENT", "Adani Enterprises", 3100),
    ("ADANIPORTS", "Adani Ports", 1400),
    ("COALINDIA", "Coal India", 470),
    ("BAJAJFINSV", "Bajaj Finserv", 1600),
    ("TECHM", "Tech Mahindra", 1300),
    ("GRASIM", "Grasim Industries", 2400),
    ("HINDALCO", "Hindalco Industries", 650),
    ("DIVISLAB", "Divi's Laboratories", 4400),
    ("DRREDDY", "Dr. Reddy's Laboratories", 6000),
    ("CIPLA", "Cipla", 1500),
    ("EICHERMOT", "Eicher Motors", 4700),
    ("HEROMOTOCO", "Hero MotoCorp", 5200),
    ("BRITANNIA", "Britannia Industries", 5300),
    ("APOLLOHOSP", "Apollo Hospitals", 6200),
    ("INDUSINDBK", "IndusInd Bank", 1450),
    ("BPCL", "Bharat Petroleum", 300),
    ("TATACONSUM", "Tata Consumer Products", 1100),
    ("SBILIFE", "SBI Life Insurance", 1450),
    ("HDFCLIFE", "HDFC Life Insurance", 620),
    ("BAJAJ-AUTO", "Bajaj Auto", 9000),
    ("SHREECEM", "Shree Cement", 25500),
    ("VEDL", "Vedanta", 440),
    ("ZOMATO", "Zomato", 190),
]
INDEX_FUTURES = [
    ("NIFTY", "Nifty 50 index", 22500, 75),
    ("BANKNIFTY", "Nifty Bank index", 48500, 30),
    ("FINNIFTY", "Nifty Financial Services index", 21800, 65),
]
FUT_LOTS = (25, 50, 75, 100, 125, 150, 175, 250, 300, 375, 500, 550, 700, 1000, 1500)
FIRST = (
    "Aarav",
    "Vivaan",
    "Aditya",
    "Ishaan",
    "Kavya",
    "Ananya",
    "Diya",
    "Rohan",
    "Meera",
    "Arjun",
    "Priya",
    "Sneha",
    "Vikram",
    "Neha",
    "Rahul",
    "Pooja",
    "Karan",
    "Anjali",
    "Suresh",
    "Lakshmi",
)
LAST = (
    "Sharma",
    "Patel",
    "Iyer",
    "Reddy",
    "Nair",
    "Gupta",
    "Mehta",
    "Shah",
    "Joshi",
    "Rao",
    "Desai",
    "Kapoor",
    "Menon",
    "Agarwal",
    "Bose",
    "Kulkarni",
)
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
CLIENTS_PER_DEALER = 15


def to_tick(value: Decimal, tick: Decimal, rounding=ROUND_FLOOR) -> Decimal:
    return ((value / tick).to_integral_value(rounding=rounding) * tick).quantize(tick)


@dataclass
class DemoData:
    clients: list[wire.Client] = field(default_factory=list)
    limits: list[wire.ClientLimit] = field(default_factory=list)
    instruments: list[wire.Instrument] = field(default_factory=list)
    positions: list[wire.Position] = field(default_factory=list)
    orders: list[tuple[wire.Order, wire.OrderRequest]] = field(default_factory=list)


def _instrument(
    rng: random.Random,
    exchange: Exchange,
    symbol: str,
    name: str,
    kind: str,
    approx: float,
    lot: int,
    tick: Decimal,
    band_pct: int,
    freeze: int,
) -> wire.Instrument:
    prev = to_tick(Decimal(str(round(approx * rng.uniform(0.95, 1.05), 2))), tick, ROUND_FLOOR)
    band = Decimal(band_pct) / 100
    return wire.Instrument(
        exchange=exchange,
        symbol=symbol,
        name=name,
        instrument_type=kind,
        lot_size=lot,
        tick_size=tick,
        last_price=prev,
        previous_close=prev,
        freeze_quantity=freeze,
        lower_band=to_tick(prev * (1 - band), tick, ROUND_CEILING),
        upper_band=to_tick(prev * (1 + band), tick, ROUND_FLOOR),
    )


def build(seed: int, trading_date: date) -> DemoData:
    rng = random.Random(seed)
    data = DemoData()
    expiry = f"{trading_date:%y}{MONTHS[trading_date.month - 1]}"
    for symbol, name, approx in EQUITIES:
        tick = Decimal("0.10") if approx > 20000 else Decimal("0.05")
        data.instruments.append(
            _instrument(
                rng, Exchange.NSE, symbol, name, "EQ", approx, 1, tick, rng.choice((10, 20, 20)), 100000
            )
        )
    for symbol, name, approx in EQUITIES[:35]:
        tick = Decimal("1.00") if approx > 20000 else Decimal("0.05")
        data.instruments.append(
            _instrument(
                rng, Exchange.BSE, symbol, name, "EQ", approx, 1, tick, rng.choice((10, 20, 20)), 100000
            )
        )
    for symbol, name, approx, lot in INDEX_FUTURES:
        data.instruments.append(
            _instrument(
                rng,
                Exchange.NFO,
                f"{symbol}{expiry}FUT",
                f"{name} future",
                "FUT",
                approx,
                lot,
                Decimal("0.05"),
                10,
                lot * 24,
            )
        )
    for symbol, name, approx in EQUITIES[:30]:
        lot = rng.choice(FUT_LOTS)
        data.instruments.append(
            _instrument(
                rng,
                Exchange.NFO,
                f"{symbol}{expiry}FUT",
                f"{name} future",
                "FUT",
                approx,
                lot,
                Decimal("0.05"),
                20,
                lot * rng.choice((20, 24, 36)),
            )
        )

    at = market_open_utc(trading_date)
    n = 0
    for dealer in DEALERS:
        for _ in range(CLIENTS_PER_DEALER):
            n += 1
            data.clients.append(
                wire.Client(
                    client_id=f"C{1000 + n}", name=f"{rng.choice(FIRST)} {rng.choice(LAST)}", dealer_id=dealer
                )
            )

    order_num = 0
    for client in data.clients:
        exposure = Decimal(0)
        for inst in rng.sample(data.instruments, rng.randint(5, 6)):
            if inst.exchange is Exchange.NFO:
                product = rng.choice((Product.NRML, Product.NRML, Product.MIS))
                qty = inst.lot_size * rng.randint(1, 4) * rng.choice((1, -1))
            else:
                product = rng.choice((Product.CNC, Product.CNC, Product.MIS))
                qty = rng.randint(1, 60) * (5 if inst.last_price < 1000 else 1)
                if product is Product.MIS:
                    qty *= rng.choice((1, -1))
            avg = to_tick(
                inst.previous_close * Decimal(str(round(rng.uniform(0.96, 1.03), 4))), inst.tick_size
            )
            exposure += abs(qty) * inst.last_price
            data.positions.append(
                wire.Position(
                    client_id=client.client_id,
                    exchange=inst.exchange,
                    symbol=inst.symbol,
                    product=product,
                    net_quantity=qty,
                    average_price=avg,
                    last_price=inst.last_price,
                    realised_pnl=Decimal(0),
                    mtm=(inst.last_price - avg) * qty,
                    buy_quantity=max(qty, 0),
                    sell_quantity=max(-qty, 0),
                    updated_at=at,
                )
            )
        max_order = Decimal(rng.choice((2_500_000, 5_000_000, 10_000_000, 20_000_000)))
        max_gross = max(
            Decimal(rng.choice((30_000_000, 50_000_000, 100_000_000))), (exposure * 2).quantize(Decimal(1))
        )
        # the MTM loss at which the broker's RMS squares the client off: 3% of its gross limit
        # (no draw from rng: every seed's book stays as it was)
        max_loss = (max_gross * 3 / 100).quantize(Decimal(1))
        data.limits.append(
            wire.ClientLimit(
                client_id=client.client_id,
                max_order_value=max_order,
                max_gross_exposure=max_gross,
                max_mtm_loss=max_loss,
            )
        )
        # one or two resting orders per client, far enough from the market not to fill at once
        for _ in range(rng.choice((0, 1, 1, 2))):
            order_num += 1
            inst = rng.choice(data.instruments)
            side = rng.choice((Side.BUY, Side.SELL))
            kind = rng.choice(
                (OrderType.LIMIT, OrderType.LIMIT, OrderType.LIMIT, OrderType.SL, OrderType.SL_M)
            )
            product = Product.NRML if inst.exchange is Exchange.NFO else Product.CNC
            if kind is OrderType.SL_M or kind is OrderType.SL:
                product = Product.MIS
            qty = inst.lot_size * rng.randint(1, 3) if inst.exchange is Exchange.NFO else rng.randint(1, 50)
            away = Decimal(str(round(rng.uniform(0.02, 0.06), 4)))
            sign = -1 if side is Side.BUY else 1
            price = trigger = None
            if kind is OrderType.LIMIT:
                price = to_tick(inst.last_price * (1 + sign * away), inst.tick_size)
            else:  # stops sit on the other side: a buy stop above the market, a sell stop below
                trigger = to_tick(inst.last_price * (1 - sign * away), inst.tick_size)
                if kind is OrderType.SL:
                    price = trigger + (-sign) * inst.tick_size * 4
            req = wire.OrderRequest(
                client_order_id=f"seed-{trading_date:%Y%m%d}-{order_num:04d}",
                client_id=client.client_id,
                exchange=inst.exchange,
                symbol=inst.symbol,
                side=side,
                quantity=qty,
                product=product,
                order_type=kind,
                price=price,
                trigger_price=trigger,
                validity=Validity.DAY,
            )
            order = wire.Order(
                order_id=f"O{order_num:09d}",
                client_order_id=req.client_order_id,
                client_id=req.client_id,
                exchange=req.exchange,
                symbol=req.symbol,
                side=side,
                quantity=qty,
                filled_quantity=0,
                average_price=Decimal(0),
                product=product,
                order_type=kind,
                price=price,
                trigger_price=trigger,
                validity=Validity.DAY,
                disclosed_quantity=None,
                status=OrderStatus.OPEN if kind is OrderType.LIMIT else OrderStatus.TRIGGER_PENDING,
                placed_by=client.dealer_id,
                created_at=at,
                updated_at=at,
            )
            data.orders.append((order, req))
    return data
