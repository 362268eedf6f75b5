"""Sans-I/O core shared by Client and AsyncClient.

Every operation is written once, as a generator that yields instructions (send a request, sleep,
open/read a stream, emit an item) and receives their results; the sync and async clients only
differ in the driver that carries the instructions out (see `sync.py` and `aio.py`)."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, Generator

import httpx

from .errors import ConnectionFailed, error_for, retry_after_seconds

RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Request:
    """One HTTP request; `retry` says whether resending it can never do harm (GETs, predictions,
    submissions carrying an Idempotency-Key). Others are resent only when the connection could
    not be opened at all (the request never left)."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    content: bytes | None = None
    files: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry: bool = False


@dataclass(frozen=True)
class Send:
    """Instruction: send `request`; the driver returns the httpx.Response (or throws the
    httpx.TransportError into the operation)."""

    request: Request
    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    """Instruction: wait `seconds`."""

    seconds: float


@dataclass(frozen=True)
class OpenStream:
    """Instruction: send `request` and return the streaming response without reading its body."""

    request: Request
    read_timeout: float


@dataclass(frozen=True)
class NextLine:
    """Instruction: the next line of an open stream, None at its end."""

    stream: Any


@dataclass(frozen=True)
class CloseStream:
    """Instruction: close an open stream."""

    stream: Any


@dataclass(frozen=True)
class Emit:
    """Instruction (iterating operations only): hand `item` to the caller."""

    item: Any


Flow = Generator[Any, Any, Any]


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter: try `attempts` times in all, waiting up to
    base * 2**n seconds (capped at `cap`) between tries. A 429 is waited out for its
    Retry-After instead, as long as one call's 429 waits add up to at most `rate_limit_wait`
    seconds; a Retry-After that would pass it is raised (RateLimited) at once."""

    attempts: int = 5
    base: float = 0.1
    cap: float = 2.0
    rate_limit_wait: float = 10.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry `retry_number` (0-based)."""
        return random.uniform(0.5, 1.0) * min(self.cap, self.base * 2 ** retry_number)

    def rate_limit_pause(self, response: httpx.Response, retry_number: int,
                         waited: float) -> float | None:
        """Seconds to wait out a 429 (its Retry-After, else the backoff delay) when `waited`
        seconds already spent on this call's 429s leave room for them; else None."""
        after = retry_after_seconds(response.headers.get("retry-after"))
        pause = self.delay(retry_number) if after is None else max(0.0, after)
        return pause if waited + pause <= self.rate_limit_wait else None


def request_flow(request: Request, policy: RetryPolicy, timeout: float | None = None) -> Flow:
    """Send with retries; the successful response, or a typed error."""
    waited = 0.0  # seconds this call has spent waiting out 429s
    for attempt in range(policy.attempts):
        last = attempt == policy.attempts - 1
        pause = policy.delay(attempt)
        try:
            response = yield Send(request, timeout)
        except httpx.TransportError as exc:
            never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            if last or not (request.retry or never_sent):
                raise ConnectionFailed(f"{request.method} {request.path}: {_describe(exc)}") \
                    from exc
        else:
            if response.status_code == 429 and request.retry and not last:
                pause = policy.rate_limit_pause(response, attempt, waited)
                waited += pause or 0.0
            elif response.status_code not in RETRY_STATUSES or not request.retry or last:
                pause = None
            if pause is None:
                raise_for_status(response)
                return response
        yield Sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


def raise_for_status(response: httpx.Response) -> None:
    """A typed error for any non-2xx response."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = response.text[:500]
    raise error_for(response.status_code, body, dict(response.headers))


def json_flow(request: Request, policy: RetryPolicy) -> Flow:
    """The response's JSON body (None for 204)."""
    response = yield from request_flow(request, policy)
    return None if response.status_code == 204 or not response.content else response.json()


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (numpy scalars and arrays converted)."""
    return json.dumps(value, separators=(",", ":"), default=_default).encode()


def _default(value: Any):
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
