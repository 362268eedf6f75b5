"""The blocking client: carries out the shared flows with httpx.Client."""
from __future__ import annotations

import time
from typing import Any, Iterator

import httpx

from .operations import Operations
from .protocol import CloseStream, Emit, Flow, NextLine, OpenStream, RetryPolicy, Send, Sleep


class Client(Operations):
    """Blocking client for a needle-service server (use as a context manager, or close())."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, *, retry: RetryPolicy | None = None,
                 poll_interval: float = 0.5, transport: httpx.BaseTransport | None = None):
        super().__init__(base_url, api_key, timeout, retry, poll_interval)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout,
                                  transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self, flow: Flow) -> Any:
        items = self._iterate(flow)
        try:
            item = next(items)
        except StopIteration as stop:
            return stop.value
        items.close()
        raise TypeError(f"this operation yields items ({type(item).__name__}): iterate it")

    def _iterate(self, flow: Flow) -> Iterator[Any]:
        streams: list[httpx.Response] = []
        value, error = None, None
        try:
            while True:
                try:
                    instruction = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                if isinstance(instruction, Emit):
                    yield instruction.item
                    continue
                try:
                    value = self._execute(instruction, streams)
                except httpx.TransportError as exc:
                    error = exc
        finally:
            flow.close()
            for stream in streams:
                stream.close()

    def _execute(self, instruction, streams: list[httpx.Response]) -> Any:
        if isinstance(instruction, Send):
            return self._http.send(self._build(instruction.request, instruction.timeout))
        if isinstance(instruction, Sleep):
            time.sleep(instruction.seconds)
            return None
        if isinstance(instruction, OpenStream):
            request = self._build(instruction.request, None, instruction.read_timeout)
            stream = self._http.send(request, stream=True)
            streams.append(stream)
            stream.lines = stream.iter_lines()  # one line iterator per stream
            return stream
        if isinstance(instruction, NextLine):
            return next(instruction.stream.lines, None)
        if isinstance(instruction, CloseStream):
            instruction.stream.close()
            if instruction.stream in streams:
                streams.remove(instruction.stream)
            return None
        raise TypeError(f"unknown instruction {instruction!r}")
