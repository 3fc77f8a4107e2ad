"""Verifying the main system's signed offline grants (Ed25519).

A grant is what lets a user log in offline while the main system is down: it must
verify against a public key fetched from the main system (``GET /keys``) at online
login or BOD, and it expires at the end of its trading day.  Offline, the key is the
one PINNED for the grant's ``key_id`` in the console's trust anchors
(localstore.anchors, outside the store): never the key stored beside the grant,
which whoever edits the store could replace along with a grant of their own.

Offline login reads the grant the console stored (``StoredGrant.verify``) with the
standard library and cryptography only: a CLI command with main down should not
pay for importing pydantic (bench P3).  It checks the signature over the canonical
bytes of exactly the claims it then reads (``claims_bytes``, the same bytes
``wire.grant_signing_bytes`` gives the main system to sign)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contract.enums import Role

if TYPE_CHECKING:
    from contract import wire


class GrantInvalid(Exception):
    """The grant's signature does not verify, its key is unknown, or it expired."""


class GrantKeyUntrusted(GrantInvalid):
    """The grant's key is not the one this console pinned for its key_id (no pin, or
    the store holds another key): ``reason`` is "grant_key_not_pinned" or
    "grant_key_mismatch"."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def claims_bytes(claims: dict[str, Any]) -> bytes:
    """The exact bytes an offline grant's signature covers: canonical JSON of the claims
    in JSON mode (sorted keys, no whitespace, ASCII)."""
    return json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _b64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _verify(claims: dict[str, Any], signature_b64: str, public_key_b64: str, user_id: Any) -> None:
    try:
        key = Ed25519PublicKey.from_public_bytes(_b64(public_key_b64))
        key.verify(_b64(signature_b64), claims_bytes(claims))
    except (InvalidSignature, ValueError, binascii.Error, AttributeError, TypeError) as exc:
        raise GrantInvalid(f"offline grant for {user_id} does not verify: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class StoredGrant:
    """The claims of a verified grant, as offline login uses them."""

    user_id: str
    role: Role
    client_ids: tuple[str, ...]
    trading_date: date
    valid_until: datetime

    @classmethod
    def verify(
        cls, grant_json: str, key: str | Mapping[str, str], stored_key_b64: str | None = None
    ) -> StoredGrant:
        """Parse the stored ``wire.OfflineGrant`` JSON and check its signature over its
        claims.  ``key``: the pinned keys (the anchors' {key_id: base64 key}; the grant's
        ``key_id`` picks one), or one base64 key the caller already trusts.
        ``stored_key_b64``, the key the store keeps beside the grant, must be the pinned
        one (another means the store was edited).  ValueError when it does not parse as a
        grant; GrantKeyUntrusted when its key is not pinned (or the store's differs);
        GrantInvalid when the signature does not verify."""
        try:
            raw = json.loads(grant_json)
            claims, signature = raw["claims"], raw["signature"]
            if not isinstance(claims, dict) or not isinstance(signature, str):
                raise TypeError("claims must be an object and signature a string")
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"unreadable offline grant: {exc}") from None
        key_id = claims.get("key_id")
        pinned: Mapping[str, str]
        if isinstance(key, str):  # the one key the caller trusts, for a key_id that is a string
            pinned = {key_id: key} if isinstance(key_id, str) else {}
        else:
            pinned = key
        pin = pinned.get(key_id) if isinstance(key_id, str) else None
        if pin is None:
            raise GrantKeyUntrusted(
                "grant_key_not_pinned",
                f"the offline grant for {claims.get('user_id')} is signed by key {key_id!r}, "
                f"which this console did not pin at an online login "
                f"(pinned: {', '.join(sorted(pinned)) or 'none'})",
            )
        if stored_key_b64 is not None and stored_key_b64 != pin:
            raise GrantKeyUntrusted(
                "grant_key_mismatch",
                f"the local store holds another public key for key {key_id!r} than the one "
                f"this console pinned from the main system: the store was edited",
            )
        _verify(claims, signature, pin, claims.get("user_id"))
        try:  # signed by main: read strictly all the same
            ids = claims["client_ids"]
            if not isinstance(ids, list) or not all(isinstance(c, str) for c in ids):
                raise TypeError("client_ids must be a list of strings")
            user_id = claims["user_id"]
            if not isinstance(user_id, str):
                raise TypeError("user_id must be a string")
            valid_until = datetime.fromisoformat(claims["valid_until"])
            if valid_until.tzinfo is None:
                raise ValueError("valid_until has no time zone")
            return cls(
                user_id,
                Role(claims["role"]),
                tuple(ids),
                date.fromisoformat(claims["trading_date"]),
                valid_until,
            )
        except (TypeError, KeyError) as exc:
            raise ValueError(f"unreadable offline grant: {exc}") from None

    def check_validity(self, now: datetime) -> None:
        if now >= self.valid_until:
            raise GrantInvalid(f"offline grant for {self.user_id} expired at {self.valid_until.isoformat()}")


def verify_grant(grant: wire.OfflineGrant, public_key_b64: str) -> None:
    """Raise GrantInvalid unless ``grant`` is signed by ``public_key_b64``."""
    _verify(grant.claims.model_dump(mode="json"), grant.signature, public_key_b64, grant.claims.user_id)


def key_for(grant: wire.OfflineGrant, keys: wire.KeySet) -> wire.PublicKey:
    for k in keys.keys:
        if k.key_id == grant.claims.key_id:
            return k
    raise GrantInvalid(f"offline grant signed by unknown key {grant.claims.key_id!r}")
