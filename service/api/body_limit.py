"""Reject request bodies over the configured size: by Content-Length, and by counting streamed bytes."""
from fastapi import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodySizeLimitMiddleware:
    """Pure ASGI middleware: 413 when a body exceeds the limit for its path."""

    def __init__(self, app: ASGIApp, *, default_limit: int, path_limits: dict[str, int]):
        self.app = app
        self.default_limit = default_limit
        # exact path -> limit for multipart uploads there; JSON bodies always get default_limit
        self.path_limits = path_limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.default_limit
        if _is_multipart(scope):
            limit = self.path_limits.get(scope["path"].rstrip("/"), self.default_limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return
        await self.app(scope, _counting(receive, limit), send)


def _is_multipart(scope: Scope) -> bool:
    return any(name == b"content-type" and value.lower().startswith(b"multipart/")
               for name, value in scope.get("headers", []))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"request body exceeds {limit} bytes"}, status_code=413)


def _counting(receive: Receive, limit: int) -> Receive:
    """Wrap receive so a chunked body that grows past the limit stops with a 413.

    An HTTPException is what FastAPI lets through from body parsing (anything else becomes a 400).
    """
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, f"request body exceeds {limit} bytes")
        return message

    return limited_receive
