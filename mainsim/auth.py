"""Who may do what: password check (scrypt), session tokens (JWT HS256) and the
Ed25519-signed offline grant a console keeps for backup-mode login.

The JWT secret and the signing key are generated once and kept in mainsim's own
database, so tokens and grants survive a restart of the simulator.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from contract import wire
from contract.wire import Role
from mainsim.store import Store
from mainsim.tradingday import end_of_day_utc, utcnow

TOKEN_TTL = timedelta(hours=12)
SCRYPT = dict(n=2**14, r=8, p=1, dklen=32)  # ~16 MiB, tens of ms: fine for a simulator's login


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)


def new_user_row(user_id: str, role: Role, password: str) -> tuple[str, str, bytes, bytes]:
    salt = os.urandom(16)
    return (user_id, role.value, salt, hash_password(password, salt))


@dataclass(frozen=True)
class Principal:
    """An authenticated user; ``scope`` is None when the user sees every client."""

    user_id: str
    role: Role
    scope: frozenset[str] | None

    def sees(self, client_id: str) -> bool:
        return self.scope is None or client_id in self.scope

    @property
    def can_trade(self) -> bool:
        return self.role in (Role.DEALER, Role.SUPERVISOR)


class Authority:
    def __init__(
        self,
        store: Store,
        trading_date: date,
        clients_of: Callable[[str | None], list[str]],
        create: bool = True,
    ):
        self.trading_date = trading_date
        self._clients_of = clients_of  # dealer_id -> list of client ids
        self._all_clients = lambda: clients_of(None)
        self.ready = False
        self.load(store, create)

    def load(self, store: Store, create: bool = True) -> None:
        """(Re)read the JWT secret, the signing key and the users from ``store``; with ``create``, make
        the keys when there are none (a primary's first start).  A standby that has no snapshot yet
        has none and is not ``ready``: it signs and accepts nothing."""
        secret = store.meta("jwt_secret")
        key_b64 = store.meta("ed25519_private")
        if secret is None or key_b64 is None:
            if not create:
                self.ready, self._users = False, {}
                return
            secret = secrets.token_hex(32)
            key = Ed25519PrivateKey.generate()
            key_b64 = wire.b64encode(key.private_bytes_raw())
            store.set_meta("jwt_secret", secret)
            store.set_meta("ed25519_private", key_b64)
        self._secret = secret
        self._key = Ed25519PrivateKey.from_private_bytes(wire.b64decode(key_b64))
        raw_pub = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = wire.PublicKey(
            key_id=hashlib.sha256(raw_pub).hexdigest()[:16],
            algorithm="Ed25519",
            public_key=wire.b64encode(raw_pub),
        )
        self._users = {u: (Role(role), salt, h) for u, role, salt, h in store.users()}
        self.ready = True

    def principal(self, user_id: str) -> Principal | None:
        entry = self._users.get(user_id)
        if entry is None:
            return None
        return self._principal(user_id, entry[0])

    def _principal(self, user_id: str, role: Role) -> Principal:
        scope = frozenset(self._clients_of(user_id)) if role is Role.DEALER else None
        return Principal(user_id, role, scope)

    def login(self, user_id: str, password: str) -> wire.SessionResponse | None:
        if not self.ready:
            return None
        entry = self._users.get(user_id)
        # hash even for an unknown user so timing does not tell which user ids exist
        salt, expected = (entry[1], entry[2]) if entry else (b"\0" * 16, b"")
        ok = hmac.compare_digest(hash_password(password, salt), expected)
        if not entry or not ok:
            return None
        role = entry[0]
        who = self._principal(user_id, role)
        now = utcnow().replace(microsecond=0)
        expires = now + TOKEN_TTL
        token = jwt.encode(
            {"sub": user_id, "role": role.value, "iat": now, "exp": expires}, self._secret, algorithm="HS256"
        )
        client_ids = sorted(who.scope) if who.scope is not None else self._all_clients()
        user = wire.UserInfo(user_id=user_id, role=role, client_ids=client_ids)
        claims = wire.GrantClaims(
            user_id=user_id,
            role=role,
            client_ids=client_ids,
            trading_date=self.trading_date,
            issued_at=now,
            valid_until=end_of_day_utc(self.trading_date),
            key_id=self.public_key.key_id,
        )
        signature = wire.b64encode(self._key.sign(wire.grant_signing_bytes(claims)))
        return wire.SessionResponse(
            access_token=token,
            expires_at=expires,
            user=user,
            offline_grant=wire.OfflineGrant(claims=claims, signature=signature),
        )

    def verify(self, token: str) -> Principal | None:
        if not self.ready:
            return None
        try:
            # exp and iat are checked against mainsim's own clock (tradingday.utcnow, which a
            # drill or test may shift), not PyJWT's reading of the real one
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            return None
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= utcnow().timestamp():
            return None
        sub = claims.get("sub")
        return self.principal(sub) if isinstance(sub, str) else None

    def user_info(self, who: Principal) -> wire.UserInfo:
        ids = sorted(who.scope) if who.scope is not None else self._all_clients()
        return wire.UserInfo(user_id=who.user_id, role=who.role, client_ids=ids)
