"""Per-key request rate limits: a token bucket per key, in this API process's memory."""
import math
import time


class RateLimiter:
    """R requests per second with bursts of up to R, per key name. Each API process keeps its own
    buckets, so N API processes behind a proxy allow up to N x R (documented in the README)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key name -> (tokens, at)

    def acquire(self, name: str, rate: float) -> float:
        """Take one token from the key's bucket: 0.0 when the request may go ahead, otherwise the
        seconds until a token is available (the request is refused and takes nothing)."""
        now = self._clock()
        tokens, at = self._buckets.get(name, (rate, now))
        tokens = min(rate, tokens + (now - at) * rate)  # refill; the bucket holds at most R
        if tokens >= 1.0:
            self._buckets[name] = (tokens - 1.0, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1.0 - tokens) / rate


def retry_after_header(wait_seconds: float) -> str:
    """Retry-After takes whole seconds; round up so that a client that obeys it succeeds."""
    return str(max(1, math.ceil(wait_seconds)))
