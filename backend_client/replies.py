"""Turn what came back from the main system (or failed to) into typed errors.

Why it exists: the mapping from HTTP status, transport failure and malformed body to
errors.* is the contract the service layer and the failure detector rely on; keeping
it in one place keeps it consistent and testable against a garbage server.  Messages
never quote a reply body (a body may carry a token or a grant).  The one text of main's
that is passed on, an error body's message and code, is shown to a person, so it is
cut short and its control and bidi characters are escaped (``shown``).
"""

from __future__ import annotations

import httpx
from pydantic import TypeAdapter, ValidationError

from backend_client.errors import (
    BackendError,
    Forbidden,
    IdempotencyConflict,
    NotFound,
    ProtocolError,
    Rejected,
    Unauthorized,
    Unavailable,
)
from contract import wire

_ERROR_BODY = TypeAdapter(wire.ErrorBody)

_BY_STATUS: dict[int, type[BackendError]] = {
    400: Rejected,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: IdempotencyConflict,
    422: Rejected,
}

# httpcore/h11 wording for a peer that closed the connection early: that is a reset,
# not a reply we failed to understand.
_CLOSED_EARLY = ("server disconnected", "peer closed connection", "connection reset", "connection closed")


def transport_error(exc: httpx.HTTPError, method: str, path: str) -> BackendError:
    """An httpx failure before a whole reply arrived -> Unavailable (or ProtocolError
    when the server answered with something that is not HTTP)."""
    where = f"{method} {path}"
    if isinstance(exc, httpx.ConnectTimeout):
        return Unavailable(f"{where}: connect timed out", kind="timeout", sent=False)
    if isinstance(exc, httpx.PoolTimeout):
        return Unavailable(f"{where}: no free connection in time", kind="timeout", sent=False)
    if isinstance(exc, httpx.TimeoutException):  # read / write timeout: it may have been sent
        return Unavailable(f"{where}: no answer in time", kind="timeout", sent=True)
    if isinstance(exc, httpx.ConnectError):
        return Unavailable(f"{where}: connection refused ({exc})", kind="refused", sent=False)
    if isinstance(exc, httpx.RemoteProtocolError):
        if any(marker in str(exc).lower() for marker in _CLOSED_EARLY):
            return Unavailable(f"{where}: connection closed mid-reply ({exc})", kind="reset", sent=True)
        return ProtocolError(f"{where}: the server's reply is not valid HTTP ({exc})")
    if isinstance(exc, (httpx.ReadError, httpx.WriteError, httpx.CloseError, httpx.NetworkError)):
        return Unavailable(
            f"{where}: connection reset ({exc or type(exc).__name__})", kind="reset", sent=True
        )
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        return ProtocolError(f"{where}: request could not be sent as HTTP ({exc})")
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError(f"{where}: the reply body could not be decoded ({exc})")
    if isinstance(exc, httpx.TransportError):
        return Unavailable(
            f"{where}: transport failure ({type(exc).__name__}: {exc})", kind="reset", sent=True
        )
    return ProtocolError(f"{where}: {type(exc).__name__}: {exc}")


_SHOWN_MAX = 500  # characters of main's error message passed on


def shown(text: str, limit: int = _SHOWN_MAX) -> str:
    """``text`` safe to print: non-printable characters (ESC, C1, U+202E ...) as escapes
    such as ``\\x1b`` or ``\\u202e``, and at most ``limit`` characters of it."""
    out = (
        text
        if text.isprintable()
        else "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
    )
    return out if len(out) <= limit else out[:limit] + f"... ({len(text):,} characters)"


def _error_body(response: httpx.Response) -> wire.ErrorBody | None:
    try:
        return _ERROR_BODY.validate_json(response.content)
    except (ValidationError, ValueError):
        return None


def _describe(response: httpx.Response) -> str:
    ctype = response.headers.get("content-type", "no content-type")
    return f"{len(response.content)} bytes of {ctype}"


def check_status(response: httpx.Response, method: str, path: str, ok: tuple[int, ...]) -> None:
    """Raise the typed error for any status outside ``ok``."""
    status = response.status_code
    if status in ok:
        return
    where = f"{method} {path}"
    body = _error_body(response)
    if status >= 500:
        reason = shown(body.error.message) if body else _describe(response)
        raise Unavailable(
            f"{where}: server error {status}: {reason}", kind="server_error", status=status, sent=True
        )
    error_type = _BY_STATUS.get(status)
    if error_type is None:
        raise ProtocolError(f"{where}: unexpected status {status} ({_describe(response)})", status=status)
    if body is None:
        raise ProtocolError(
            f"{where}: status {status} without the contract's error body ({_describe(response)})",
            status=status,
        )
    raise error_type(shown(body.error.message), status=status, code=shown(body.error.code, 64))


def _summarise(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_input=False)[:3]
    parts = []
    for err in first:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if err.get("type") == "value_error":  # one of wire's own checks: its message says it all
            msg = str(err.get("ctx", {}).get("error", msg))
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = exc.error_count() - len(first)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def decode_body(response: httpx.Response, adapter: TypeAdapter, method: str, path: str):
    """Validate a success reply against its wire model; anything else is a ProtocolError."""
    where = f"{method} {path}"
    status = response.status_code
    ctype = response.headers.get("content-type", "")
    if not response.content:
        raise ProtocolError(f"{where}: empty reply body (status {status})", status=status)
    if "json" not in ctype.lower():
        raise ProtocolError(f"{where}: expected JSON, got {_describe(response)}", status=status)
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        raise ProtocolError(
            f"{where}: reply does not match the contract: {_summarise(exc)}", status=status
        ) from None
    except ValueError as exc:
        raise ProtocolError(f"{where}: reply is not valid JSON ({exc})", status=status) from None
