"""Main as the witness of each console's audit chain (CONTRACT.md: /audit/...).

Why main: a console's checkpoints are signed with a key outside its store, but the
store's owner can still delete them.  Main keeps the checkpoints it accepted where the
dealer cannot write, and accepts one only if it EXTENDS the last one it witnessed for
that console: the console sends the audit rows in between (their canonical, redacted
form) and main recomputes the chain from its witnessed head with the console's own
``row_hash`` (contract.auditchain, the one shared definition).  So a console
whose history was rewritten before a witnessed checkpoint can never get another one
accepted, and the replay handshake (``purpose: "replay"``) is refused with 409: a
rewritten history cannot be replayed.

* ``POST /audit/checkpoint-keys``: the console's checkpoint-signing public key, at each
  online login (a re-enrolled console's new key replaces the old one; the chain rule
  still binds it to what was witnessed).
* ``POST /audit/checkpoints``: 201 witnessed; 200 the same checkpoint again (a lost
  answer); 403 no key registered for the console or another key; 422 a bad signature
  or rows that are not exactly the ones after the witnessed checkpoint; 409
  ``chain_not_extending`` (the rows do not lead from the witnessed head to the new one,
  or a witnessed row has another hash now) or ``seq_not_growing``.
* ``GET /audit/checkpoints/latest?console_id=``: the last witnessed one; 404 none.
"""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, Query, Response

from contract import checkpoints as cp
from contract import wire
from contract.auditchain import GENESIS_HASH, ChainBreak, extend, signature_ok
from mainsim.api import ERRORS, bearer_user
from mainsim.auth import Authority, Principal
from mainsim.book import ApiError
from mainsim.store import Store
from mainsim.tradingday import utcnow

log = logging.getLogger("mainsim.witness")


class Witness:
    """The rules, apart from HTTP."""

    def __init__(self, store: Store):
        self.store = store

    def register(self, body: cp.CheckpointKeyRegistration, user: Principal) -> cp.CheckpointKeyReceipt:
        now = utcnow()
        self.store.register_checkpoint_key(body.console_id, body.public_key, user.user_id, now.isoformat())
        log.info("checkpoint key registered", extra={"console_id": body.console_id, "user_id": user.user_id})
        return cp.CheckpointKeyReceipt(
            console_id=body.console_id, public_key=body.public_key, registered_at=now
        )

    def latest(self, console_id: str) -> cp.WitnessedCheckpoint:
        last = self.store.latest_checkpoint(console_id)
        if last is None:
            raise ApiError(
                404, "not_found", f"Main has witnessed no audit checkpoint of console {console_id}."
            )
        return cp.WitnessedCheckpoint(**last)

    def submit(self, body: cp.CheckpointSubmission) -> tuple[int, cp.WitnessedCheckpoint]:
        """(201 or 200, the witnessed checkpoint), or ApiError."""
        claims, signed = body.checkpoint.claims, body.checkpoint
        cid, refused = claims.console_id, ("Replay refused: " if body.purpose == "replay" else "")
        key = self.store.checkpoint_key(cid)
        if key is None:
            raise ApiError(
                403,
                "forbidden",
                f"No checkpoint key is registered for console {cid}; "
                f"an online login of the console registers it.",
            )
        if signed.public_key != key:
            raise ApiError(
                403,
                "forbidden",
                f"The checkpoint is signed with a key main does not hold for console "
                f"{cid}; an online login of the console registers its current key.",
            )
        if not signature_ok(claims.model_dump(mode="json"), key, signed.signature):
            raise ApiError(
                422,
                "bad_signature",
                f"Checkpoint #{claims.number} of console {cid}: the signature "
                f"does not verify with its registered key.",
            )
        same = self.store.checkpoint(cid, claims.number)
        if same is not None:
            if (same["seq"], same["head_hash"], same["at"]) == (claims.seq, claims.head_hash, claims.at):
                return 200, cp.WitnessedCheckpoint(**same)
            raise ApiError(
                409,
                cp.NOT_EXTENDING,
                f"{refused}checkpoint #{claims.number} of console {cid} was witnessed with other "
                f"content (row {same['seq']}); this one says row {claims.seq}: the console's history "
                f"is not the one main witnessed.",
            )
        last = self.store.latest_checkpoint(cid)
        after, prev = (last["seq"], last["head_hash"]) if last else (0, GENESIS_HASH)
        what = (
            f"main's last witnessed checkpoint #{last['number']} (row {after})"
            if last
            else "the chain's start"
        )
        if last is not None and claims.seq <= after:
            if claims.seq == after and claims.head_hash != prev:
                raise ApiError(
                    409,
                    cp.NOT_EXTENDING,
                    f"{refused}row {after} of console {cid} has another hash than in {what}: the "
                    f"console's audit chain was rewritten.",
                )
            raise ApiError(
                409,
                cp.SEQ_NOT_GROWING,
                f"{refused}checkpoint #{claims.number} covers row {claims.seq}, not past {what}.",
            )
        try:
            end, head = extend(prev, after, (r.model_dump() for r in body.rows))
        except ChainBreak as exc:
            raise ApiError(
                422,
                "invalid_request",
                f"rows: expected rows {after + 1}-{claims.seq} after {what} ({exc.reason}).",
                "rows",
            ) from None
        except (TypeError, ValueError) as exc:  # a payload no canonical JSON can hold (NaN, Infinity)
            raise ApiError(
                422, "invalid_request", f"rows: a payload cannot be hashed ({exc}).", "rows"
            ) from None
        if end != claims.seq:
            raise ApiError(
                422,
                "invalid_request",
                f"rows: expected rows {after + 1}-{claims.seq} after {what}, got up to row {end}.",
                "rows",
            )
        if head != claims.head_hash:
            log.warning(
                "checkpoint refused: chain does not extend",
                extra={"console_id": cid, "number": claims.number},
            )
            raise ApiError(
                409,
                cp.NOT_EXTENDING,
                f"{refused}the audit rows {after + 1}-{claims.seq} of console {cid} do not lead from "
                f"{what} to checkpoint #{claims.number}'s head: its chain does not extend the one main "
                f"witnessed (rows at or before row {after} were rewritten, or these rows were).",
            )
        row = {
            **claims.model_dump(mode="json"),
            "public_key": key,
            "signature": signed.signature,
            "witnessed_at": utcnow().isoformat(),
        }
        self.store.add_checkpoint(row)
        return 201, cp.WitnessedCheckpoint(**row)


def install(app: FastAPI, auth: Authority, store: Store) -> None:
    """Add the witness routes to mainsim's app (mainsim.openapi_export passes no real
    ``auth`` or ``store``: describing the routes touches neither)."""
    witness = Witness(store)
    r = wire.API_PREFIX
    who = bearer_user(auth)

    @app.post(
        f"{r}/audit/checkpoint-keys",
        response_model=cp.CheckpointKeyReceipt,
        status_code=201,
        responses={401: ERRORS[401], 422: ERRORS[422]},
        tags=["audit"],
    )
    async def register_checkpoint_key(body: cp.CheckpointKeyRegistration, user: Principal = Depends(who)):
        return witness.register(body, user)

    @app.post(
        f"{r}/audit/checkpoints",
        response_model=cp.WitnessedCheckpoint,
        status_code=201,
        responses={
            200: {"model": cp.WitnessedCheckpoint, "description": "the same checkpoint again"},
            **ERRORS,
        },
        tags=["audit"],
    )
    async def submit_checkpoint(
        body: cp.CheckpointSubmission, response: Response, user: Principal = Depends(who)
    ):
        status, witnessed = witness.submit(body)
        response.status_code = status
        return witnessed

    @app.get(
        f"{r}/audit/checkpoints/latest",
        response_model=cp.WitnessedCheckpoint,
        responses={401: ERRORS[401], 404: ERRORS[404], 422: ERRORS[422]},
        tags=["audit"],
    )
    async def latest_checkpoint(
        console_id: str = Query(..., min_length=1, max_length=16), user: Principal = Depends(who)
    ):
        return witness.latest(console_id)
