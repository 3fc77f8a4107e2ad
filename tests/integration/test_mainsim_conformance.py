"""mainsim answers as its OpenAPI document says, one finding of issue 10 each
(schemathesis found them; tests/integration/test_mainsim_schemathesis.py keeps sweeping):

- a JSON boolean is not an integer in any request body (``{"disclosed_quantity":
  false}`` was stored as 0, ``{"quantity": true}`` as 1);
- a body that cannot be parsed is 422 with an ErrorBody, as the document says, on
  every operation that takes one (a body that was not UTF-8 got an undocumented 400);
- a method a path does not serve, OPTIONS included, is 405 with ``Allow`` naming
  exactly the methods the document lists for the path (it named only the first
  route's, ``GET`` on /orders, /orders/{id} and /admin/faults).

Against a real mainsim with --allow-faults, so the admin path is in its document.
"""

from __future__ import annotations

import json

import httpx
import pytest

from contract import wire
from mainsim.openapi_export import DEFAULT_PATH
from tests.mainsim_support import API, Desk, error_code, login, new_coid, order_body, start_sim

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    sim = start_sim(tmp_path_factory, "mainsim-conformance", allow_faults=True)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def desk(server):
    return Desk(server.url, "dealer1")


@pytest.fixture(scope="module")
def control(server):
    """The supervisor on the control URL (admin calls there change the mode before replying)."""
    return httpx.Client(
        base_url=f"{server.control_url}{API}",
        timeout=10,
        headers={"Authorization": f"Bearer {login(server.control_url, 'super1')}"},
    )


@pytest.fixture(scope="module")
def document(server) -> dict:
    """The live document: with --allow-faults it holds the admin paths too."""
    return httpx.get(f"{server.url}/openapi.json", timeout=10).json()


@pytest.fixture(scope="module")
def open_order(desk) -> dict:
    return next(o for o in desk.get("/orders").json() if o["status"] in ("OPEN", "TRIGGER_PENDING"))


def _ref_name(schema: dict) -> str:
    return schema["$ref"].rsplit("/", 1)[-1]


def _numeric_fields(document: dict, model: str) -> list[str]:
    props = document["components"]["schemas"][model]["properties"]
    return sorted(
        name
        for name, p in props.items()
        if {"integer", "number"} & {s.get("type") for s in p.get("anyOf", [p])}
    )


# ------------------------------------------------------------------ booleans are not integers


def test_every_numeric_field_of_every_request_model_refuses_a_boolean(document):
    """In process, over every request body the live document names: a JSON true or false
    in an integer or number field is an error of that field (pydantic's lax mode read them
    as 1 and 0).  A request model added later is covered without touching this test."""
    models = {
        _ref_name(op["requestBody"]["content"]["application/json"]["schema"])
        for ops in document["paths"].values()
        for op in ops.values()
        if "requestBody" in op
    }
    assert {"SessionRequest", "OrderRequest", "OrderModify", "FaultRequest"} <= models
    taken = []
    for model in sorted(models):
        cls = getattr(wire, model, None)
        if cls is None:  # a request model of another module: the live tests below still cover its path
            continue
        for field in _numeric_fields(document, model):
            for value in (True, False):
                errors = _errors(cls, {field: value})
                if not any(e["loc"][0] == field for e in errors):
                    taken.append(f"{model}.{field}={value}")
    assert taken == [], f"booleans taken as numbers: {taken}"


def _errors(cls, data: dict) -> list[dict]:
    try:
        cls.model_validate_json(json.dumps(data))
    except ValueError as exc:
        return exc.errors()
    return []


def test_patch_with_a_boolean_quantity_is_422_and_changes_nothing(desk, open_order):
    """The finding: PATCH {"disclosed_quantity": false} was accepted and stored 0.  Also a
    boolean, float or string in any numeric field of the modify body."""
    oid = open_order["order_id"]
    before = desk.get(f"/orders/{oid}").json()
    accepted = []
    for field in ("disclosed_quantity", "quantity", "price", "trigger_price"):
        for value in (False, True, *(("5", 5.0) if field.endswith("quantity") else ())):
            r = desk.http.patch(f"/orders/{oid}", json={field: value})
            if (
                r.status_code != 422
                or error_code(r) != "invalid_request"
                or r.json()["error"]["field"] != field
            ):
                accepted.append(f"{field}={value!r}: {r.status_code} {r.text[:120]}")
    assert accepted == []
    assert desk.get(f"/orders/{oid}").json() == before


def test_place_with_a_boolean_quantity_is_422_and_places_nothing(desk):
    inst = next(i for i in desk.instruments().values() if i["exchange"] == "NSE" and i["lot_size"] == 1)
    client = desk.get("/clients").json()[0]["client_id"]
    accepted = []
    for field, value in (
        ("quantity", True),
        ("quantity", 1.0),
        ("disclosed_quantity", False),
        ("price", True),
        ("trigger_price", False),
    ):
        body = order_body(client, inst, client_order_id=new_coid("bool"), **{field: value})
        r = desk.post_order(**body)
        if r.status_code != 422 or r.json()["error"]["field"] != field:
            accepted.append(f"{field}={value!r}: {r.status_code} {r.text[:120]}")
        if desk.get(f"/orders/by-client-id/{body['client_order_id']}").status_code != 404:
            accepted.append(f"{field}={value!r}: an order was placed")
    assert accepted == []


def test_fault_duration_true_is_not_one_second(control):
    r = control.post("/admin/faults", json={"mode": "none", "duration_s": True})
    assert r.status_code == 422, r.text
    assert (r.status_code, error_code(r), r.json()["error"]["field"]) == (
        422,
        "invalid_request",
        "duration_s",
    )


# ------------------------------------------------------------------ unparseable bodies


def _concrete(path: str, order_id: str) -> str:
    return path.replace("{order_id}", order_id).replace("{client_order_id}", "nope")


def test_an_unparseable_body_is_a_documented_422_on_every_body_taking_operation(server, document, open_order):
    """Bytes that are not UTF-8 (FastAPI's 400) and text that is not JSON, on every operation
    with a body in the live document: 422 with an ErrorBody, and 422 is what the document says."""
    token = login(server.url, "super1")
    wrong = []
    for path, ops in sorted(document["paths"].items()):
        for method, op in sorted(ops.items()):
            if "requestBody" not in op:
                continue
            url = f"{server.url}{_concrete(path, open_order['order_id'])}"
            for raw in (b'{"user_id": "\xff\xfe"}', b"\xc3", b'{"quantity": '):
                r = httpx.request(
                    method.upper(),
                    url,
                    content=raw,
                    timeout=10,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                body = r.json()
                if (
                    r.status_code != 422
                    or body["error"]["code"] != "invalid_request"
                    or body["error"]["field"]
                ):
                    wrong.append(f"{method.upper()} {path} {raw!r}: {r.status_code} {r.text[:100]}")
            documented = op["responses"].get("422", {}).get("content", {}).get("application/json", {})
            if _ref_name(documented.get("schema", {"$ref": "-"})) != "ErrorBody" or "400" in op["responses"]:
                wrong.append(
                    f"{method.upper()} {path}: documents {sorted(op['responses'])}, 422 as {documented}"
                )
    assert wrong == []


def test_the_committed_document_describes_every_error_as_an_error_body():
    """mainsim answers every 4xx with wire.ErrorBody; FastAPI's own HTTPValidationError (which
    documents {"detail": [...]}) was documented as the 422 of reads with parameters."""
    document = json.loads(DEFAULT_PATH.read_text())
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                if status.startswith("4"):
                    schema = resp["content"]["application/json"]["schema"]
                    assert _ref_name(schema) == "ErrorBody", (method, path, status, schema)


# ------------------------------------------------------------------ methods a path does not serve


def test_an_unserved_method_is_405_with_exactly_the_paths_methods_in_allow(server, document, open_order):
    """OPTIONS is answered like any other method a path does not serve: the OpenAPI document
    is how a client learns the API, and no browser (CORS preflight) calls mainsim."""
    token = login(server.url, "super1")
    assert {"/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/admin/faults"} <= set(document["paths"])
    wrong = []
    for path, ops in sorted(document["paths"].items()):
        served = {m.upper() for m in ops}
        for method in sorted(set(METHODS) - served):
            r = httpx.request(
                method,
                f"{server.url}{_concrete(path, open_order['order_id'])}",
                timeout=10,
                headers={"Authorization": f"Bearer {token}"},
            )
            allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            if r.status_code != 405 or allow != served:
                wrong.append(
                    f"{method} {path}: {r.status_code}, Allow {sorted(allow)}, serves {sorted(served)}"
                )
    assert wrong == []
