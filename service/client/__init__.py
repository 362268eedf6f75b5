"""Python client for needle-service: `Client` (blocking) and `AsyncClient` (asyncio).

    from service.client import Client
    with Client("http://127.0.0.1:8000") as client:
        job = client.wait(client.submit(spec)["id"])
        model = client.to_torch(job["id"])

Imports stay light (httpx, numpy); torch is imported only by `to_torch`, needle only by
`to_needle`."""
from .aio import AsyncClient
from .errors import (Conflict, ConnectionFailed, NeedleServiceError, NotFound, RateLimited,
                     ServerError, TooLarge, Unauthorized, ValidationError)
from .protocol import RetryPolicy
from .results import TERMINAL, Event, Metrics
from .sync import Client

__all__ = ["AsyncClient", "Client", "Conflict", "ConnectionFailed", "Event", "Metrics",
           "NeedleServiceError", "NotFound", "RateLimited", "RetryPolicy", "ServerError",
           "TERMINAL", "TooLarge", "Unauthorized", "ValidationError"]
