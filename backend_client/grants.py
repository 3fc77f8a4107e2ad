"""Verifying the main system's signed offline grants (Ed25519).

A grant is what lets a user log in offline while the main system is down: it must
verify against a public key fetched from the main system (``GET /keys``) at online
login or BOD, and it expires at the end of its trading day."""

from __future__ import annotations

import binascii
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from backend_client import wire


class GrantInvalid(Exception):
    """The grant's signature does not verify, its key is unknown, or it expired."""


def verify_grant(grant: wire.OfflineGrant, public_key_b64: str) -> None:
    """Raise GrantInvalid unless ``grant`` is signed by ``public_key_b64``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(wire.b64decode(public_key_b64))
        key.verify(wire.b64decode(grant.signature), wire.grant_signing_bytes(grant.claims))
    except (InvalidSignature, ValueError, binascii.Error) as exc:
        raise GrantInvalid(f"offline grant for {grant.claims.user_id} does not verify: {type(exc).__name__}") from exc


def key_for(grant: wire.OfflineGrant, keys: wire.KeySet) -> wire.PublicKey:
    for k in keys.keys:
        if k.key_id == grant.claims.key_id:
            return k
    raise GrantInvalid(f"offline grant signed by unknown key {grant.claims.key_id!r}")


def check_validity(grant: wire.OfflineGrant, now: datetime) -> None:
    if now >= grant.claims.valid_until:
        raise GrantInvalid(f"offline grant for {grant.claims.user_id} expired at {grant.claims.valid_until.isoformat()}")
