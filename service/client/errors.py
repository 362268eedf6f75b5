"""Typed errors for every way a request can fail, built from the API's {"detail": ...} body."""
from __future__ import annotations

from typing import Any


class NeedleServiceError(Exception):
    """Base class: `status` is the HTTP status (None when no response arrived), `detail` the
    API's `detail` field (a string, or the list of validation issues)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class ConnectionFailed(NeedleServiceError):
    """The server could not be reached (or kept dropping the connection) after every retry."""


class ValidationError(NeedleServiceError):
    """422: `errors` is the API's list of issues, each with `loc` (a path into the request,
    e.g. ["body", "model", "layers", 2, "in_features"]) and `msg`."""

    def __init__(self, message: str, *, status: int | None = 422, detail: Any = None):
        super().__init__(message, status=status, detail=detail)
        self.errors: list[dict[str, Any]] = detail if isinstance(detail, list) else []

    def lines(self) -> list[str]:
        """One `loc: msg` line per issue (the body prefix dropped: it is always the body)."""
        return [f"{format_loc(error.get('loc', ()))}: {error.get('msg', '')}"
                for error in self.errors] or [str(self.detail)]


class NotFound(NeedleServiceError):
    """404: no such job or dataset (or it belongs to another tenant)."""


class Conflict(NeedleServiceError):
    """409: the object is in the wrong state (e.g. no parameters yet, deleting a running job,
    an Idempotency-Key reused with a different body)."""


class TooLarge(NeedleServiceError):
    """413: the request body or upload exceeds the server's limit."""


class Unauthorized(NeedleServiceError):
    """401 or 403: no API key, a wrong one, or a key without the right."""


class RateLimited(NeedleServiceError):
    """429: slow down; `retry_after` is the server's Retry-After in seconds (None if absent)."""

    def __init__(self, message: str, *, status: int | None = 429, detail: Any = None,
                 retry_after: float | None = None):
        super().__init__(message, status=status, detail=detail)
        self.retry_after = retry_after


class ServerError(NeedleServiceError):
    """5xx: the server failed (after retries, for 502/503/504 on retryable requests)."""


BY_STATUS: dict[int, type[NeedleServiceError]] = {
    401: Unauthorized, 403: Unauthorized, 404: NotFound, 409: Conflict, 413: TooLarge,
    422: ValidationError, 429: RateLimited}


def format_loc(loc) -> str:
    """["body", "model", "layers", 2] -> "model.layers[2]"."""
    parts = list(loc)
    if parts and parts[0] == "body" and len(parts) > 1:
        parts = parts[1:]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def error_for(status: int, body: Any, headers: dict[str, str] | None = None) -> NeedleServiceError:
    """The typed exception for an error response (body: the parsed JSON, or text)."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    cls = BY_STATUS.get(status, ServerError if status >= 500 else NeedleServiceError)
    if cls is ValidationError:
        error = ValidationError("", status=status, detail=detail)
        error.args = ("invalid request: " + "; ".join(error.lines()),)
        return error
    message = f"HTTP {status}: {detail}" if detail not in (None, "") else f"HTTP {status}"
    if cls is RateLimited:
        return RateLimited(message, status=status, detail=detail,
                           retry_after=retry_after_seconds((headers or {}).get("retry-after")))
    return cls(message, status=status, detail=detail)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header's seconds (None when absent, or an HTTP date)."""
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: rare from this API; the caller backs off on its own
        return None
