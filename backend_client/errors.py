"""Typed errors of the main backend client.

Callers (the service layer, sync/) catch these and only these: the client never
lets a raw httpx, websockets, json or pydantic exception escape.
"""

from __future__ import annotations


class BackendError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class Unauthorized(BackendError):
    """401: no token, an expired or bad token, or wrong credentials."""


class Forbidden(BackendError):
    """403: the client or action is outside the user's scope or role."""


class NotFound(BackendError):
    """404: no such order (or client_order_id)."""


class Rejected(BackendError):
    """400/422: the main system refused the request; ``code`` says why (see wire.REJECT_CODES)."""


class IdempotencyConflict(BackendError):
    """409: the client_order_id was already accepted with other parameters."""


class Unavailable(BackendError):
    """The main system could not be reached or did not answer in time.

    ``kind`` is one of "refused", "reset", "timeout", "server_error" (5xx), "closed",
    "too_large" (the reply passed the client's size cap).
    For a non-idempotent call, an Unavailable raised after the request was sent means
    the outcome is unknown: look the order up by client_order_id before resending.
    """

    def __init__(self, message: str, *, kind: str, status: int | None = None, sent: bool = False):
        super().__init__(message, status=status)
        self.kind = kind
        self.sent = sent  # True when the request may have reached the server


class DeadlineExceeded(Unavailable):
    """The whole request (connect, send, headers and the whole body, retries included)
    took longer than its deadline (``deadline_s``).  A main system that trickles its
    reply a byte at a time is as good as gone: kind "timeout", like a silent one.  The
    request may have arrived (``sent`` is True): look an order up before resending."""

    def __init__(self, message: str, *, deadline_s: float):
        super().__init__(message, kind="timeout", sent=True)
        self.deadline_s = deadline_s


class ReplyTooLarge(Unavailable):
    """The reply was larger than the client accepts (``limit`` bytes, counted as it
    streamed in, before anything was parsed): kind "too_large".  Nothing of it is used;
    the connection is dropped.  The request did arrive (``sent`` is True)."""

    def __init__(self, message: str, *, limit: int, status: int | None = None):
        super().__init__(message, kind="too_large", status=status, sent=True)
        self.limit = limit


class ProtocolError(BackendError):
    """The server answered, but not as the contract says: truncated or malformed JSON,
    wrong types, an HTML error page, an empty body, an unexpected status."""
