"""The REST and WebSocket surface of the simulated main system (CONTRACT.md),
with wire.py's models as request and response models so the OpenAPI document is
generated from the one shared schema.  Every error, including FastAPI's own
validation errors and unknown paths, answers with a wire.ErrorBody.

Invalid input is 422 whatever made it so (CONTRACT allows 400 too; one status is
one rule for the client and one line in the OpenAPI): a body that is not JSON,
or not even UTF-8, which FastAPI answers with 400, is 422 here as well.  A method
a path does not serve, OPTIONS included, is 405 with ``Allow`` naming exactly the
methods the path serves (see _allowed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Query, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from contract import wire
from contract.wire import API_PREFIX, OrderStatus, Role
from mainsim.auth import Authority, Principal
from mainsim.book import ApiError, Book
from mainsim.faultcontrol import PriceSet, set_last_price
from mainsim.market import Market
from mainsim.metrics import SimMetrics
from mainsim.site import SiteMiddleware, SiteState
from mainsim.stream import Hub
from mainsim.tradingday import utcnow

log = logging.getLogger("mainsim.api")


@dataclass
class Sim:
    """Everything the routes need, built by mainsim.server."""

    book: Book
    auth: Authority
    hub: Hub
    faults: Any = None  # mainsim.faultcontrol.FaultControl when --allow-faults
    market: Market | None = None  # the price ticker (mainsim.server saves its last prices at shutdown)
    background: tuple[Callable[[], Any], ...] = ()  # coroutine factories run for the app's lifetime
    metrics: SimMetrics = field(default_factory=SimMetrics)  # this sim's own registry (GET /metrics)
    # the DR tier: role and epoch (mainsim.replication swaps book and market at promotion)
    site: SiteState = field(default_factory=SiteState)
    dr: Any = None  # mainsim.replication.Site: runs the role, promotes and demotes


def error_response(
    status: int, code: str, message: str, field: str | None = None, headers: dict | None = None
) -> JSONResponse:
    body = wire.ErrorBody(error=wire.ErrorDetail(code=code, message=message, field=field))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


HTTP_CODES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": wire.ErrorBody} for code in (401, 403, 404, 409, 422)
}
# What the book's refusal of an order placement counts as (mainsim_orders_total{outcome})
ORDER_REFUSALS = {409: "conflict", 422: "rejected"}
# Reads with a query or path parameter: FastAPI would otherwise document its own 422 body
# (HTTPValidationError), which mainsim never sends.
READ_ERRORS: dict[int | str, dict[str, Any]] = {code: ERRORS[code] for code in (401, 403, 422)}


def _allowed(req: Request) -> list[str]:
    """Every method the app's routes serve on this request's path.  OPTIONS is not
    among them: it is answered 405 like any method a path does not serve, because
    the published OpenAPI document is how a client learns the API (no browser calls
    mainsim, so there is no CORS preflight to answer) and every path then serves
    exactly the methods the document lists."""
    methods: set[str] = set()
    for route in req.app.router.routes:
        match, _ = route.matches(req.scope)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _field_of(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_req, exc: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.field, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req, exc: RequestValidationError):
        errors = exc.errors()
        first: dict[str, Any] = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # its loc is ("body", offset): no field to name
            where, why = first["loc"][-1], first.get("ctx", {}).get("error", "")
            return error_response(
                422, "invalid_request", f"The body is not valid JSON: {why} at character {where}."
            )
        field = _field_of(tuple(first.get("loc", ())))
        msg = str(first.get("msg", "invalid request"))
        return error_response(422, "invalid_request", f"{field}: {msg}" if field else msg, field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException):
        status, headers = exc.status_code, getattr(exc, "headers", None)
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if status == 400:
            # FastAPI's answer to a body it could not decode (not UTF-8): invalid input, as above
            status, detail = 422, "The body could not be read: it must be JSON in UTF-8."
        elif status == 404 and detail == "Not Found":
            detail = "No such path."
        elif status == 405:
            # Starlette names only the methods of the first route on the path (one per method here).
            detail = f"{req.method} is not served on {req.url.path}."
            headers = {**(headers or {}), "Allow": ", ".join(_allowed(req))}
        code = HTTP_CODES.get(status, "error" if status >= 500 else "invalid_request")
        return error_response(status, code, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _crash(_req, exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal", "Internal error in the simulated main system.")


def bearer_user(auth: Authority) -> Callable[..., Principal]:
    """The dependency that turns a request's bearer token into its user; 401 without a good one."""
    bearer = HTTPBearer(auto_error=False)

    def who(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if creds is None or creds.scheme.lower() != "bearer":
            raise ApiError(401, "unauthorized", "Missing bearer token.")
        user = auth.verify(creds.credentials)
        if user is None:
            raise ApiError(401, "unauthorized", "Bad or expired token.")
        return user

    return who


def create_app(sim: Sim) -> FastAPI:
    auth, hub = sim.auth, sim.hub  # one of each for the process; the book is read as sim.book

    @asynccontextmanager
    async def lifespan(_app):
        tasks = [asyncio.ensure_future(factory()) for factory in sim.background]
        try:
            yield
        finally:
            hub.close_all()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    app = FastAPI(
        title="Lifeboat mainsim: reference main backend",
        version="1",
        lifespan=lifespan,
        description="The broker's main trading system as simulated for demos, drills and tests.",
    )
    install_error_handlers(app)
    metrics = sim.metrics
    # inside the metrics (added first): a standby's 503s are counted like any reply
    app.add_middleware(SiteMiddleware, state=sim.site)
    metrics.instrument(app, lambda: len(hub.subs))
    metrics.watch_site(sim.site)
    who = bearer_user(auth)

    def trader(user: Principal = Depends(who)) -> Principal:
        if not user.can_trade:
            raise ApiError(
                403, "forbidden", f"Role {user.role.value} may not place, modify or cancel orders."
            )
        return user

    def in_scope(user: Principal, client_id: str) -> None:
        if not user.sees(client_id) or client_id not in sim.book.clients:
            raise ApiError(403, "forbidden", f"Client {client_id} is outside your scope.", "client_id")

    def scoped_order(user: Principal, order_id: str) -> wire.Order:
        order = sim.book.order(order_id)
        if not user.sees(order.client_id):
            raise ApiError(403, "forbidden", f"Order {order_id} belongs to a client outside your scope.")
        return order

    def clients_filter(user: Principal, client_id: str | None):
        if client_id is not None:
            in_scope(user, client_id)
            return lambda c: c == client_id
        return user.sees

    r = API_PREFIX

    # At the server root, with no auth: it holds no client, order or user id (mainsim/metrics.py).
    # Not in the OpenAPI document: it is Prometheus's text format, not part of the JSON API.
    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        body, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(body, headers={"content-type": content_type})

    @app.get(f"{r}/health", response_model=wire.Health, tags=["session"])
    async def health() -> wire.Health:
        site = sim.site
        return wire.Health(
            status="ok",
            trading_date=sim.book.trading_date,
            server_time=utcnow(),
            role=site.role,
            epoch=site.epoch,
            following=site.following,
            replication_lag_s=site.replication_lag_s(),
        )

    @app.post(
        f"{r}/session",
        response_model=wire.SessionResponse,
        responses={401: ERRORS[401], 422: ERRORS[422]},
        tags=["session"],
    )
    async def session(body: wire.SessionRequest) -> wire.SessionResponse:
        if not auth.ready:
            raise ApiError(
                503, "standby", "This standby has not yet taken its first snapshot from the primary."
            )
        resp = await asyncio.get_running_loop().run_in_executor(None, auth.login, body.user_id, body.password)
        if resp is None:
            raise ApiError(401, "unauthorized", "Wrong user id or password.")
        return resp

    @app.get(f"{r}/keys", response_model=wire.KeySet, responses={401: ERRORS[401]}, tags=["session"])
    async def keys(user: Principal = Depends(who)) -> wire.KeySet:
        return wire.KeySet(keys=[auth.public_key])

    @app.get(f"{r}/bod", response_model=wire.BodSnapshot, responses={401: ERRORS[401]}, tags=["reference"])
    async def bod(user: Principal = Depends(who)) -> wire.BodSnapshot:
        sees = user.sees
        return wire.BodSnapshot(
            trading_date=sim.book.trading_date,
            generated_at=utcnow(),
            seq=sim.book.seq,
            user=auth.user_info(user),
            instruments=list(sim.book.instruments.values()),
            clients=[c for c in sim.book.clients.values() if sees(c.client_id)],
            limits=[lim for lim in sim.book.limits.values() if sees(lim.client_id)],
            positions=[sim.book.marked(p) for p in sim.book.positions.values() if sees(p.client_id)],
            open_orders=[
                o for o in sim.book.orders.values() if o.status in wire.OPEN_STATUSES and sees(o.client_id)
            ],
            trades=[t for t in sim.book.trades if sees(t.client_id)],
        )

    @app.get(
        f"{r}/instruments",
        response_model=list[wire.Instrument],
        responses={401: ERRORS[401]},
        tags=["reference"],
    )
    async def instruments(user: Principal = Depends(who)):
        return list(sim.book.instruments.values())

    @app.get(
        f"{r}/clients", response_model=list[wire.Client], responses={401: ERRORS[401]}, tags=["reference"]
    )
    async def clients(user: Principal = Depends(who)):
        return [c for c in sim.book.clients.values() if user.sees(c.client_id)]

    @app.get(
        f"{r}/limits", response_model=list[wire.ClientLimit], responses={401: ERRORS[401]}, tags=["reference"]
    )
    async def limits(user: Principal = Depends(who)):
        return [lim for lim in sim.book.limits.values() if user.sees(lim.client_id)]

    @app.get(f"{r}/positions", response_model=list[wire.Position], responses=READ_ERRORS, tags=["book"])
    async def positions(client_id: str | None = Query(None, max_length=64), user: Principal = Depends(who)):
        keep = clients_filter(user, client_id)
        return [sim.book.marked(p) for p in sim.book.positions.values() if keep(p.client_id)]

    @app.get(f"{r}/orders", response_model=list[wire.Order], responses=READ_ERRORS, tags=["orders"])
    async def orders(
        client_id: str | None = Query(None, max_length=64),
        status: OrderStatus | None = None,
        user: Principal = Depends(who),
    ):
        keep = clients_filter(user, client_id)
        return [
            o
            for o in sim.book.orders.values()
            if keep(o.client_id) and (status is None or o.status is status)
        ]

    @app.get(
        f"{r}/orders/by-client-id/{{client_order_id}}",
        response_model=wire.Order,
        responses={**READ_ERRORS, 404: ERRORS[404]},
        tags=["orders"],
    )
    async def order_by_client_id(client_order_id: str, user: Principal = Depends(who)):
        order_id = sim.book.by_coid.get(client_order_id)
        if order_id is None:
            raise ApiError(404, "not_found", f"No order with client_order_id {client_order_id}.")
        return scoped_order(user, order_id)

    @app.get(
        f"{r}/orders/{{order_id}}",
        response_model=wire.Order,
        responses={**READ_ERRORS, 404: ERRORS[404]},
        tags=["orders"],
    )
    async def order(order_id: str, user: Principal = Depends(who)):
        return scoped_order(user, order_id)

    @app.post(
        f"{r}/orders",
        response_model=wire.Order,
        status_code=201,
        tags=["orders"],
        responses={
            200: {"model": wire.Order, "description": "Already accepted with these parameters"},
            **ERRORS,
        },
    )
    async def place(body: wire.OrderRequest, response: Response, user: Principal = Depends(trader)):
        if body.client_id in sim.book.clients and not user.sees(body.client_id):
            raise ApiError(403, "forbidden", f"Client {body.client_id} is outside your scope.", "client_id")
        try:
            order, created = sim.book.place(body, placed_by=user.user_id)
        except ApiError as exc:
            metrics.order(ORDER_REFUSALS.get(exc.status, "error"))
            raise
        except Exception:
            metrics.order("error")
            raise
        metrics.order("accepted" if created else "duplicate")
        if not created:
            response.status_code = 200
        return order

    @app.patch(f"{r}/orders/{{order_id}}", response_model=wire.Order, responses=ERRORS, tags=["orders"])
    async def modify(order_id: str, body: wire.OrderModify, user: Principal = Depends(trader)):
        return sim.book.modify(scoped_order(user, order_id), body)

    @app.delete(f"{r}/orders/{{order_id}}", response_model=wire.Order, responses=ERRORS, tags=["orders"])
    async def cancel(order_id: str, user: Principal = Depends(trader)):
        return sim.book.cancel(scoped_order(user, order_id))

    @app.get(f"{r}/trades", response_model=list[wire.Trade], responses=READ_ERRORS, tags=["book"])
    async def trades(client_id: str | None = Query(None, max_length=64), user: Principal = Depends(who)):
        keep = clients_filter(user, client_id)
        return [t for t in sim.book.trades if keep(t.client_id)]

    @app.websocket(f"{r}/stream")
    async def stream(ws: WebSocket):
        token = ws.query_params.get("token")
        header = ws.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        user = auth.verify(token) if token else None
        since_text = ws.query_params.get("since")
        since = None
        if since_text is not None:
            try:
                since = int(since_text)
            except ValueError:
                since = -1  # nonsense: the client gets a resnapshot
        if user is None:
            await ws.send_denial_response(error_response(401, "unauthorized", "Missing or bad token."))
            return
        await ws.accept()
        await hub.serve(ws, user, since, book_backlog(sim.book))

    if sim.faults is not None:

        @app.get(f"{r}/admin/faults", response_model=wire.FaultState, responses=ERRORS, tags=["admin"])
        async def fault_state(user: Principal = Depends(who)):
            _supervisor(user)
            return sim.faults.state()

        @app.post(f"{r}/admin/faults", response_model=wire.FaultState, responses=ERRORS, tags=["admin"])
        async def set_fault(
            body: wire.FaultRequest, request: Request, response: Response, user: Principal = Depends(who)
        ):
            _supervisor(
                user
            )  # asked on the public port: replied first, the fault begins after (faultcontrol.py)
            return await sim.faults.set(body.mode, body.duration_s, peer=request.client, response=response)

        @app.post(f"{r}/admin/prices", response_model=wire.Instrument, responses=ERRORS, tags=["admin"])
        async def set_price(body: PriceSet, user: Principal = Depends(who)):
            _supervisor(user)  # a drill's lever: one instrument's last price, as a tick would set it
            return set_last_price(sim.book, sim.market, body)

    return app


def _supervisor(user: Principal) -> None:
    if user.role is not Role.SUPERVISOR:
        raise ApiError(403, "forbidden", "Only a supervisor may stage faults.")


def book_backlog(book: Book):
    def backlog(after: int, upto: int):
        if after < book.pruned_to:
            return None
        return book.store.events_between(after, upto)

    return backlog
