"""BackendClient against the real reference backend (mainsim subprocess on 127.0.0.1).

Every endpoint, idempotency both ways, and the 401/403/404/409/422 mapping, through
the client's public API only.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from backend_client.client import BackendClient
from backend_client.errors import (
    Forbidden,
    IdempotencyConflict,
    NotFound,
    Rejected,
    Unauthorized,
    Unavailable,
)
from contract import wire


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def coid(tag: str = "T") -> str:
    return f"{tag}-{uuid.uuid4().hex[:16]}"


def cheapest_equity(instruments: list[wire.Instrument]) -> wire.Instrument:
    eq = [i for i in instruments if i.exchange == wire.Exchange.NSE and i.instrument_type == "EQ"]
    return min(eq, key=lambda i: i.last_price)


def resting_buy(inst: wire.Instrument, client_id: str, **over) -> wire.OrderRequest:
    """A valid LIMIT BUY at the lower band edge: accepted, and it rests (OPEN)."""
    tick = inst.tick_size
    price = -((-inst.lower_band) // tick) * tick  # lower band rounded up to the tick
    fields = dict(
        client_order_id=coid(),
        client_id=client_id,
        exchange=inst.exchange,
        symbol=inst.symbol,
        side=wire.Side.BUY,
        quantity=inst.lot_size,
        product=wire.Product.MIS,
        order_type=wire.OrderType.LIMIT,
        price=price,
    )
    fields.update(over)
    return wire.OrderRequest(**fields)


def test_every_endpoint(sim):
    async def scenario():
        async with BackendClient(sim.url) as client:
            health = await client.health()
            assert health.status == "ok"
            assert client.latency_ms is not None and client.latency_ms > 0

            session = await client.login("dealer1", "demo")
            assert client.token == session.access_token
            assert session.user.role is wire.Role.DEALER and session.user.client_ids
            assert session.offline_grant.claims.user_id == "dealer1"

            keys = await client.keys()
            assert session.offline_grant.claims.key_id in {k.key_id for k in keys.keys}

            bod = await client.bod()
            assert bod.trading_date == health.trading_date
            assert {c.client_id for c in bod.clients} == set(session.user.client_ids)

            instruments = await client.instruments()
            assert len(instruments) >= 100
            assert {i.exchange for i in instruments} == {
                wire.Exchange.NSE,
                wire.Exchange.BSE,
                wire.Exchange.NFO,
            }
            clients = await client.clients()
            assert {c.dealer_id for c in clients} == {"dealer1"}
            limits = await client.limits()
            assert {lim.client_id for lim in limits} == {c.client_id for c in clients}

            all_positions = await client.positions()
            assert all_positions, "demo data has open positions"
            some_client = all_positions[0].client_id
            mine = await client.positions(client_id=some_client)
            assert mine and {p.client_id for p in mine} == {some_client}

            inst = cheapest_equity(instruments)
            target = session.user.client_ids[0]
            req = resting_buy(inst, target)
            placed = await client.place_order(req)
            assert placed.created is True
            order = placed.order
            assert order.client_order_id == req.client_order_id and order.status is wire.OrderStatus.OPEN

            assert (await client.order(order.order_id)).order_id == order.order_id
            assert (await client.order_by_client_id(req.client_order_id)).order_id == order.order_id
            open_orders = await client.orders(client_id=target, status=wire.OrderStatus.OPEN)
            assert order.order_id in {o.order_id for o in open_orders}
            assert all(o.client_id == target and o.status is wire.OrderStatus.OPEN for o in open_orders)

            new_price = order.price + inst.tick_size
            modified = await client.modify_order(order.order_id, wire.OrderModify(price=new_price))
            assert modified.price == new_price and modified.order_id == order.order_id

            cancelled = await client.cancel_order(order.order_id)
            assert cancelled.status is wire.OrderStatus.CANCELLED

            market = wire.OrderRequest(
                client_order_id=coid("M"),
                client_id=target,
                exchange=inst.exchange,
                symbol=inst.symbol,
                side=wire.Side.BUY,
                quantity=inst.lot_size,
                product=wire.Product.MIS,
                order_type=wire.OrderType.MARKET,
            )
            filled = (await client.place_order(market)).order
            assert filled.status is wire.OrderStatus.COMPLETE and filled.filled_quantity == inst.lot_size
            trades = await client.trades(client_id=target)
            assert filled.order_id in {t.order_id for t in trades}

    run(scenario())


def test_idempotency_both_ways(sim):
    async def scenario():
        async with BackendClient(sim.url) as client:
            session = await client.login("dealer1", "demo")
            inst = cheapest_equity(await client.instruments())
            req = resting_buy(inst, session.user.client_ids[0])
            first = await client.place_order(req)
            again = await client.place_order(req)
            assert first.created is True and again.created is False
            assert again.order.order_id == first.order.order_id
            other = req.model_copy(update={"quantity": req.quantity * 2})
            with pytest.raises(IdempotencyConflict) as caught:
                await client.place_order(other)
            assert caught.value.status == 409
            # still exactly one order under that id
            orders = await client.orders(client_id=req.client_id)
            assert [o.order_id for o in orders if o.client_order_id == req.client_order_id] == [
                first.order.order_id
            ]

    run(scenario())


def test_error_mapping(sim):
    async def scenario():
        async with BackendClient(sim.url) as anon:
            with pytest.raises(Unauthorized):
                await anon.login("dealer1", "wrong")
            assert anon.token is None
            with pytest.raises(Unauthorized):
                await anon.positions()
        async with BackendClient(sim.url, token="not.a.jwt") as bad:
            with pytest.raises(Unauthorized):
                await bad.orders()

        async with BackendClient(sim.url) as d2:
            other_client = (await d2.login("dealer2", "demo")).user.client_ids[0]

        async with BackendClient(sim.url) as client:
            session = await client.login("dealer1", "demo")
            inst = cheapest_equity(await client.instruments())
            with pytest.raises(Forbidden):
                await client.positions(client_id=other_client)
            with pytest.raises(Forbidden):
                await client.place_order(resting_buy(inst, other_client))
            with pytest.raises(NotFound):
                await client.order("NO-SUCH-ORDER")
            with pytest.raises(NotFound):
                await client.order_by_client_id("no-such-client-order-id")

            mine = session.user.client_ids[0]
            cases = {
                "unknown_symbol": resting_buy(inst, mine, symbol="NOSUCHSYM"),
                "invalid_quantity": resting_buy(inst, mine, quantity=0),
                "price_band": resting_buy(inst, mine, price=inst.upper_band * 2),
                "product_exchange": resting_buy(inst, mine, product=wire.Product.NRML),
                "price_required": resting_buy(inst, mine, price=None),
            }
            if inst.tick_size < Decimal(1):
                cases["tick_size"] = resting_buy(inst, mine, price=inst.last_price + inst.tick_size / 3)
            for code, req in cases.items():
                with pytest.raises(Rejected) as caught:
                    await client.place_order(req)
                assert caught.value.code == code, (code, caught.value.code, caught.value.message)
                assert caught.value.status in (400, 422) and caught.value.message

            placed = (await client.place_order(resting_buy(inst, mine))).order
            await client.cancel_order(placed.order_id)
            with pytest.raises(Rejected) as caught:
                await client.cancel_order(placed.order_id)
            assert caught.value.code == "not_open"

        async with BackendClient(sim.url) as viewer:
            await viewer.login("viewer1", "demo")
            with pytest.raises(Forbidden):
                await viewer.place_order(resting_buy(inst, mine))

    run(scenario())


def test_fault_switch_is_supervisor_only(sim_factory):
    sim = sim_factory(allow_faults=True)

    async def scenario():
        async with BackendClient(sim.url, control_url=sim.control_url, read_timeout=1.0, retries=0) as dealer:
            await dealer.login("dealer1", "demo")
            with pytest.raises(Forbidden):
                await dealer.get_fault()
            with pytest.raises(Forbidden):
                await dealer.set_fault(wire.FaultRequest(mode=wire.FaultMode.ERROR))
        async with BackendClient(sim.url, control_url=sim.control_url, read_timeout=1.0, retries=0) as sup:
            await sup.login("super1", "demo")
            assert (await sup.get_fault()).mode is wire.FaultMode.NONE
            state = await sup.set_fault(wire.FaultRequest(mode=wire.FaultMode.ERROR, duration_s=30))
            assert state.mode is wire.FaultMode.ERROR and state.until is not None
            with pytest.raises(Unavailable) as caught:
                await sup.health()  # the public address now answers 503
            assert caught.value.kind == "server_error" and caught.value.status == 503
            assert (
                await sup.set_fault(wire.FaultRequest(mode=wire.FaultMode.NONE))
            ).mode is wire.FaultMode.NONE
            assert (await sup.health()).status == "ok"

    run(scenario())
