"""The asyncio client: carries out the same flows with httpx.AsyncClient."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import httpx

from .operations import Operations
from .protocol import CloseStream, Emit, Flow, NextLine, OpenStream, RetryPolicy, Send, Sleep


class AsyncClient(Operations):
    """asyncio client with Client's methods: `await` them, and `async for` the iterating ones
    (list, events). Use as an async context manager, or `await aclose()`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, *, retry: RetryPolicy | None = None,
                 poll_interval: float = 0.5, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(base_url, api_key, timeout, retry, poll_interval)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                       timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def _run(self, flow: Flow) -> Any:
        result: list[Any] = []
        async for item in self._iterate(flow, result):
            raise TypeError(f"this operation yields items ({type(item).__name__}): iterate it")
        return result[0] if result else None

    async def _iterate(self, flow: Flow, result: list | None = None) -> AsyncIterator[Any]:
        streams: list[httpx.Response] = []
        value, error = None, None
        try:
            while True:
                try:
                    instruction = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    if result is not None:
                        result.append(stop.value)
                    return
                value, error = None, None
                if isinstance(instruction, Emit):
                    yield instruction.item
                    continue
                try:
                    value = await self._execute(instruction, streams)
                except httpx.TransportError as exc:
                    error = exc
        finally:
            flow.close()
            for stream in streams:
                await stream.aclose()

    async def _execute(self, instruction, streams: list[httpx.Response]) -> Any:
        if isinstance(instruction, Send):
            return await self._http.send(self._build(instruction.request, instruction.timeout))
        if isinstance(instruction, Sleep):
            await asyncio.sleep(instruction.seconds)
            return None
        if isinstance(instruction, OpenStream):
            request = self._build(instruction.request, None, instruction.read_timeout)
            stream = await self._http.send(request, stream=True)
            streams.append(stream)
            stream.lines = stream.aiter_lines()
            return stream
        if isinstance(instruction, NextLine):
            return await anext(instruction.stream.lines, None)
        if isinstance(instruction, CloseStream):
            await instruction.stream.aclose()
            if instruction.stream in streams:
                streams.remove(instruction.stream)
            return None
        raise TypeError(f"unknown instruction {instruction!r}")
