"""Connection limits uvicorn lacks: a header timeout (an idle or trickling socket is closed)
and a body timeout (a request whose body stalls gets a 408)."""
import asyncio

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def timed_protocol(header_timeout_s: float) -> type:
    """uvicorn's httptools protocol that closes a connection whose request line and headers do
    not arrive within header_timeout_s of it opening (or of the previous response ending), so
    idle and slowloris sockets cannot pile up. uvicorn's own keep-alive timeout only starts
    after a first response."""

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderTimeoutProtocol


class BodyTimeoutMiddleware:
    """408 when the client sends no body bytes for `timeout_s` while the app reads the body.
    Once the body is complete, receive() is passed through untimed (disconnect listeners)."""

    def __init__(self, app: ASGIApp, *, timeout_s: float):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                # an HTTPException is what FastAPI lets through from body parsing
                raise HTTPException(408, f"the request body stalled for {self.timeout_s:g} s",
                                    headers={"Connection": "close"}) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
