"""The wire form of a job's events: encoded once, shared by every stream that sends them."""
import functools
import json
import math

from fastapi.sse import format_sse_event

from ...jobs import Job, MetricPoint
from ..schemas import JobOut

KEEPALIVE = b": keep-alive\n\n"
RETRY_MS = 2000  # how long an EventSource waits before it reconnects


def job_json(job: Job) -> str:
    """The job exactly as GET /v1/jobs/{id} returns it."""
    return JobOut.from_job(job).model_dump_json()


def status_event(job_data: str) -> bytes:
    """`event: status` with the job's JSON."""
    return format_sse_event(event="status", data_str=job_data)


def end_event(job_data: str) -> bytes:
    """`event: end` with the final job's JSON; the stream closes after it."""
    return format_sse_event(event="end", data_str=job_data)


def metric_event(point: MetricPoint) -> bytes:
    """`event: metric`, its id the point's seq, its data the point as /metrics returns it
    (MetricPointOut's JSON, built directly: a small fraction of the cost, and a fast job makes
    thousands of points a second; tests/service/test_stream_encoding.py holds it to the model's
    output)."""
    values = ",".join([f"{_json_str(key)}:{_json_number(value)}"
                       for key, value in point.values.items()])
    return (f"event: metric\nid: {point.seq}\ndata: {{\"seq\":{point.seq},\"kind\":"
            f"{_json_str(point.kind)},\"epoch\":{point.epoch},\"step\":{point.step},"
            f"\"values\":{{{values}}}}}\n\n").encode()


@functools.lru_cache(maxsize=1024)
def _json_str(text: str) -> str:
    """A JSON string (metric names and kinds: a handful, so cached)."""
    return json.dumps(text)


def _json_number(value) -> str:
    """A float as pydantic serialises it (repr, as json does; inf/nan: null)."""
    if value is None:
        return "null"
    value = float(value)
    return repr(value) if math.isfinite(value) else "null"


def retry_field() -> bytes:
    """The reconnection delay for EventSource clients (sent once, first)."""
    return format_sse_event(retry=RETRY_MS)
