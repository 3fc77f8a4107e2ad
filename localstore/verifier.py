"""The offline password verifier (scrypt), with nothing but the standard library.

Why its own module: a script's backup-mode command (``--password-stdin``) starts
the password check (``start_check``, about 0.5 s of scrypt at OWASP parameters)
before it imports SQLAlchemy, httpx and the rest, and lets it run in a thread
beside them: hashlib's scrypt runs without the GIL (bench P3).  The verifier is
peeked from the store file read-only with sqlite3; the real check order (clock,
grant, the attempt's reservation against the throttle and lockout, then this answer)
stays in sync.offline.login, which uses an early answer only once the attempt was
reserved, and only for the same user, password and stored verifier.  Starting early
gives nothing away: an answer nobody reads is not an attempt, and the one that is
read is counted first.

Verifier format: ``scrypt$<N>$<r>$<p>$<salt b64>$<hash b64>``; its parameters are
stored in it and verification uses them.  New verifiers use ``SCRYPT_N``, read at
each call: the test suite lowers it (a seam set in-process, or by tests/launcher.py
for a subprocess); nothing here reads the environment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

SCRYPT_N = 2**17  # OWASP; tests set a cheaper power of two (read at call time)
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
SALT_BYTES = 16
_MIN_N = 2**10
_MAX_N = 2**20  # a tampered verifier must not make us allocate gigabytes


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 16 * 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=SCRYPT_DKLEN
    )


def _default_n() -> int:
    """``SCRYPT_N`` now (a test may have lowered it); refused unless ``parse_verifier``
    would accept it, so no verifier is made that could never be checked."""
    n = SCRYPT_N
    if n < _MIN_N or n > _MAX_N or n & (n - 1):
        raise ValueError(f"SCRYPT_N must be a power of two between {_MIN_N} and {_MAX_N}, not {n}")
    return n


def make_verifier(password: str, *, n: int | None = None) -> str:
    """A scrypt verifier for ``password`` (stores N, r, p and a random 16-byte salt)."""
    if not isinstance(password, str) or not password:
        raise ValueError("password must be a non-empty string")
    n = n or _default_n()
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def parse_verifier(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, hash) of a verifier string; ValueError if malformed or out of bounds."""
    try:
        scheme, n_s, r_s, p_s, salt_s, hash_s = stored.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt = base64.b64decode(salt_s, validate=True)
        digest = base64.b64decode(hash_s, validate=True)
    except (ValueError, AttributeError) as exc:
        raise ValueError("malformed password verifier") from exc
    if (
        scheme != "scrypt"
        or not (_MIN_N <= n <= _MAX_N)
        or n & (n - 1)
        or not (1 <= r <= 32)
        or not (1 <= p <= 16)
    ):
        raise ValueError("password verifier has unsupported parameters")
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("malformed password verifier")
    return n, r, p, salt, digest


def check_verifier(stored: str, password: str) -> bool:
    """True when ``password`` matches; uses the parameters stored in the verifier and a
    constant-time comparison.  A malformed verifier never matches."""
    try:
        n, r, p, salt, digest = parse_verifier(stored)
    except ValueError:
        return False
    candidate = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=128 * r * (n + p + 2) + 16 * 1024 * 1024,
        dklen=len(digest),
    )
    return hmac.compare_digest(candidate, digest)


# --------------------------------------------------------------------------- early check


@dataclass(frozen=True)
class EarlyCheck:
    """A scrypt check started ahead of time; sync.offline.login uses its answer only
    when user, password and the stored verifier are still the same."""

    user_id: str
    password: str
    verifier: str
    answer: Future[bool]

    def matches(self, user_id: str, password: str, verifier: str) -> bool:
        return (self.user_id, self.password, self.verifier) == (user_id, password, verifier)


def start_check(user_id: str, password: str, verifier: str) -> EarlyCheck:
    """Check ``password`` against ``verifier`` in a daemon thread, starting now."""
    answer: Future[bool] = Future()

    def work() -> None:
        try:
            answer.set_result(check_verifier(verifier, password))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            answer.set_exception(exc)

    threading.Thread(target=work, name="lifeboat-password-check", daemon=True).start()
    return EarlyCheck(user_id, password, verifier, answer)


def start_check_from_file(store_file: Path, user_id: str, password: str) -> EarlyCheck | None:
    """``start_check`` with the user's verifier read from the store file, read only and
    before the store is opened for real (no migrations, no SQLAlchemy).  None when
    there is none or the file cannot be read: the real login then says why."""
    if not store_file.is_file():
        return None
    try:
        con = sqlite3.connect(f"{store_file.resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            row = con.execute(
                "SELECT verifier FROM offline_credentials WHERE user_id = ?", (user_id,)
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    if not row or not isinstance(row[0], str):
        return None
    return start_check(user_id, password, row[0])
