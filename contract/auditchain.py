"""The audit chain's one definition, shared by the console and the main system.

Why here: the console keeps the hash-chained audit log (localstore.audit) and signs
checkpoints of it; main witnesses those checkpoints and, to accept one, recomputes
the chain from the last head it witnessed over the rows the console sends
(mainsim.witness).  Both sides must hash a row byte for byte alike, so the canonical
form, the row hash and the checkpoint's signed bytes live in this one module, which
mainsim may import (it may not import localstore).

* A row's hash is SHA-256 of the canonical JSON of ``{id, at, user_id, mode, action,
  payload}`` followed by the previous row's hash (``GENESIS_HASH`` before row 1).
  Canonical JSON: sorted keys, no whitespace, Decimals as strings, UTF-8.
* A checkpoint says "this console's chain ends, at row ``seq``, with ``head_hash``";
  its claims ``{console_id, number, seq, head_hash, at, mode, reason}`` are signed
  with the console's Ed25519 key (kept outside the store, localstore.anchors) over
  their canonical JSON.
* No pydantic here: localstore.audit imports this on the journal's hot path.  The
  witness endpoints' bodies are in contract.checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

GENESIS_HASH = "0" * 64  # prev_hash of the first audit row


# --------------------------------------------------------------------------- canonical form and row hash


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "model_dump"):  # pydantic models (wire)
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot put a {type(value).__name__} in the audit log")


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, Decimals as strings."""
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
        allow_nan=False,
    )


def row_hash(
    *, id: int, at: str, user_id: str | None, mode: str, action: str, payload: Any, prev_hash: str
) -> str:
    body = canonical_json(
        {"id": id, "at": at, "user_id": user_id, "mode": mode, "action": action, "payload": payload}
    )
    return hashlib.sha256((body + prev_hash).encode("utf-8")).hexdigest()


class ChainBreak(Exception):
    """Rows that do not continue a chain: ``row`` is the first one that does not."""

    def __init__(self, row: int, reason: str):
        super().__init__(f"row {row}: {reason}")
        self.row = row
        self.reason = reason


def extend(prev_hash: str, after_seq: int, rows: Iterable[dict[str, Any]]) -> tuple[int, str]:
    """The chain's (last id, head hash) after ``rows`` (dicts with id, at, user_id, mode,
    action, payload), which must be rows ``after_seq + 1, after_seq + 2, ...`` in order;
    raises ChainBreak otherwise."""
    expected, head = after_seq + 1, prev_hash
    for r in rows:
        if r["id"] != expected:
            raise ChainBreak(expected, f"expected row {expected}, got row {r['id']}")
        head = row_hash(
            id=r["id"],
            at=r["at"],
            user_id=r["user_id"],
            mode=r["mode"],
            action=r["action"],
            payload=r["payload"],
            prev_hash=head,
        )
        expected += 1
    return expected - 1, head


# --------------------------------------------------------------------------- checkpoints

CLAIM_FIELDS = ("console_id", "number", "seq", "head_hash", "at", "mode", "reason")


def signing_bytes(claims: dict[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers: the canonical JSON of its claims."""
    return canonical_json({k: claims[k] for k in CLAIM_FIELDS}).encode("utf-8")


def signature_ok(claims: dict[str, Any], public_key_b64: str, signature_b64: str) -> bool:
    """True when ``signature_b64`` is ``public_key_b64``'s Ed25519 signature of ``claims``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), signing_bytes(claims))
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError, binascii.Error):
        return False
