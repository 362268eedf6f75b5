"""A job's event stream: the server's SSE route (MAP contract 3), resumed with Last-Event-ID
after a dropped connection, or -- against servers without it -- the same events built from
polling the job and its metrics cursor. Either way nothing is lost or repeated."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from .errors import ConnectionFailed, error_for
from .protocol import (RETRY_STATUSES, CloseStream, Emit, Flow, NextLine, OpenStream, Request,
                       RetryPolicy, Sleep, json_flow)
from .results import TERMINAL, Event

METRICS_PAGE = 10_000


@dataclass
class Cursor:
    """What the consumer has seen: the last metric seq and the last job state."""

    seq: int = 0
    job: dict[str, Any] | None = None

    def accept(self, event: Event) -> bool:
        """Whether `event` is new (and remember it): metrics by seq, status by content."""
        if event.type == "metric":
            seq = event.id if event.id is not None else int(event.data.get("seq", 0))
            if seq <= self.seq:
                return False
            self.seq = seq
            return True
        if event.type == "status":
            if event.data == self.job:
                return False
            self.job = event.data
        return True


@dataclass
class SSEParser:
    """Incremental text/event-stream parser: feed lines, get complete events."""

    event: str = "message"
    data: list[str] = field(default_factory=list)
    last_id: str | None = None

    def feed(self, line: str) -> Event | None:
        """One line (without its newline); an Event when a blank line completes one."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # keep-alive comment
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id":
            self.last_id = value
        return None

    def _dispatch(self) -> Event | None:
        event, data, self.event, self.data = self.event, self.data, "message", []
        if not data:
            return None
        seq = int(self.last_id) if event == "metric" and self.last_id else None
        return Event(event, json.loads("\n".join(data)), seq)


def sse_flow(job_id: str, cursor: Cursor, policy: RetryPolicy, read_timeout: float) -> Flow:
    """Events from GET /v1/jobs/{id}/events; returns the final job, or None when the server
    has no such route (the caller falls back to polling)."""
    failures, waited = 0, 0.0  # waited: seconds spent waiting out 429s
    while True:
        headers = {"Accept": "text/event-stream"}
        if cursor.seq:
            headers["Last-Event-ID"] = str(cursor.seq)
        request = Request("GET", f"/v1/jobs/{job_id}/events", headers=headers, retry=True)
        try:
            stream = yield OpenStream(request, read_timeout)
        except httpx.TransportError as exc:
            failures = yield from _backoff(failures, policy, exc, request)
            continue
        if stream.status_code == 404:
            yield CloseStream(stream)
            return None  # the job exists (checked first): this server predates the route
        if stream.status_code != 200:
            yield CloseStream(stream)
            pause = policy.rate_limit_pause(stream, failures, waited) \
                if stream.status_code == 429 and failures + 1 < policy.attempts else None
            if pause is not None:
                waited += pause
                failures += 1
                yield Sleep(pause)
                continue
            if stream.status_code in RETRY_STATUSES:
                failures = yield from _backoff(failures, policy, None, request)
                continue
            raise error_for(stream.status_code, None, dict(stream.headers))
        parser = SSEParser()
        try:
            while True:
                line = yield NextLine(stream)
                if line is None:
                    break  # the server closed the stream without `end`: resume
                event = parser.feed(line)
                if event is None:
                    continue
                failures, waited = 0, 0.0  # the server answers: only consecutive fruitless tries count
                if not cursor.accept(event):
                    continue
                yield Emit(event)
                if event.type == "end":
                    yield CloseStream(stream)
                    return event.data
        except httpx.TransportError as exc:  # dropped mid-stream: reconnect from cursor.seq
            yield CloseStream(stream)
            failures = yield from _backoff(failures, policy, exc, request)
            continue
        # (no yield in a `finally`: the drivers close whatever a flow abandoned)
        yield CloseStream(stream)
        failures = yield from _backoff(failures, policy, None, request)


def _backoff(failures: int, policy: RetryPolicy, exc, request: Request) -> Flow:
    if failures + 1 >= policy.attempts:
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "server unavailable"
        raise ConnectionFailed(f"{request.method} {request.path}: {reason}")
    yield Sleep(policy.delay(failures))
    return failures + 1


def poll_flow(job_id: str, cursor: Cursor, policy: RetryPolicy, interval: float) -> Flow:
    """The same events from polling GET /v1/jobs/{id} and its metrics cursor."""
    while True:
        job = yield from json_flow(Request("GET", f"/v1/jobs/{job_id}", retry=True), policy)
        status = Event("status", job)
        if cursor.accept(status):
            yield Emit(status)
        # the job was read first: once it is terminal, the points read next are all of them
        while True:
            page = yield from json_flow(Request(
                "GET", f"/v1/jobs/{job_id}/metrics",
                params={"after": cursor.seq, "limit": METRICS_PAGE}, retry=True), policy)
            for point in page["points"]:
                event = Event("metric", point, point["seq"])
                if cursor.accept(event):
                    yield Emit(event)
            if len(page["points"]) < METRICS_PAGE:
                break
        if job["status"] in TERMINAL:
            yield Emit(Event("end", job))
            return job
        yield Sleep(interval)
