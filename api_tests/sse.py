"""A small server-sent events reader over httpx, for the stream tests and the stream benchmark."""
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass
class Event:
    """One dispatched event (comments come as event "comment" with the text as data)."""

    event: str
    data: str
    id: str | None = None

    def json(self):
        """The data parsed as JSON."""
        return json.loads(self.data)


def events(response: httpx.Response, comments: bool = False) -> Iterator[Event]:
    """Parse a text/event-stream response as it arrives (the SSE spec's line rules)."""
    name, data, event_id = "message", [], None
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Event(name, "\n".join(data), event_id)
            name, data, event_id = "message", [], None
        elif line.startswith(":"):
            if comments:
                yield Event("comment", line[1:].strip())
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


def open_stream(client: httpx.Client, job_id: str, *, last_event_id: str | None = None,
                after: int | None = None, timeout: float = 60):
    """A streaming GET /v1/jobs/{id}/events (use as a context manager)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    params = {"after": after} if after is not None else {}
    return client.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, params=params,
                         timeout=httpx.Timeout(timeout, connect=10))


def collect(client: httpx.Client, job_id: str, **kwargs) -> list[Event]:
    """Every event of a stream until the server closes it (after `end`)."""
    with open_stream(client, job_id, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(events(response))
