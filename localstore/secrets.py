"""The online session token, kept in the OS keyring and nowhere else.

Why: a bearer token in a plain file is a login for whoever copies the file.  When
the machine has no usable keyring backend (headless: keyring's ``fail`` backend
raises NoKeyringError; the ``null`` backend silently discards), we say so once on
stderr and keep nothing: the user logs in again next time.  There is never a
plaintext fallback.

keyring is imported inside the functions (about 75 ms), so CLI commands that
never touch the token do not pay for it.
"""

from __future__ import annotations

import sys

SERVICE = "lifeboat"
NO_BACKEND_WARNING = "no OS keyring backend: the token is not kept; log in again next time"

_warned = False


def _warn_once(detail: str | None = None) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    message = NO_BACKEND_WARNING if not detail else f"{NO_BACKEND_WARNING} ({detail})"
    print(f"lifeboat: {message}", file=sys.stderr)


def _usable_backend():
    """The active keyring backend, or None when it cannot keep a secret."""
    import keyring
    from keyring.backends import fail, null

    try:
        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - a broken keyring configuration (any error) is "no backend", not a crash
        return None
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    # a chainer with nothing to chain to keeps nothing either
    if getattr(backend, "backends", None) == []:
        return None
    return backend


def save_token(user_id: str, token: str) -> bool:
    """Keep ``token`` for ``user_id`` in the OS keyring.  False (and a one-time warning
    on stderr) when no backend can keep it; nothing is written anywhere then."""
    from keyring.errors import KeyringError

    backend = _usable_backend()
    if backend is None:
        _warn_once()
        return False
    try:
        backend.set_password(SERVICE, user_id, token)
    except KeyringError as exc:
        _warn_once(type(exc).__name__)
        return False
    return True


def load_token(user_id: str) -> str | None:
    """The kept token, or None (none kept, or no usable backend)."""
    from keyring.errors import KeyringError

    backend = _usable_backend()
    if backend is None:
        return None
    try:
        return backend.get_password(SERVICE, user_id)
    except KeyringError:
        return None


def delete_token(user_id: str) -> str:
    """Forget the token (logout).  Missing token or backend is not an error; the answer
    says which it was, so nobody is told a token was removed when none was kept:
    "removed", "none" (no token kept for the user) or "no_keyring"."""
    from keyring.errors import KeyringError, PasswordDeleteError

    backend = _usable_backend()
    if backend is None:
        return "no_keyring"
    try:
        if backend.get_password(SERVICE, user_id) is None:  # some backends delete nothing without a word
            return "none"
        backend.delete_password(SERVICE, user_id)
    except (PasswordDeleteError, KeyringError):
        return "none"
    return "removed"
