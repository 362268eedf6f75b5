"""The wire form of a job's events: encoded once, shared by every stream that sends them."""
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
    (MetricPointOut's JSON, built directly: a fifth of the cost, and a fast job makes thousands
    of points a second; tests/service/test_stream_encoding.py holds it to the model's output)."""
    values = {key: _finite_float(value) for key, value in point.values.items()}
    data = json.dumps({"seq": point.seq, "kind": point.kind, "epoch": point.epoch,
                       "step": point.step, "values": values}, separators=(",", ":"))
    return b"event: metric\nid: %d\ndata: %s\n\n" % (point.seq, data.encode())


def _finite_float(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None  # as pydantic serialises inf/nan: null


def retry_field() -> bytes:
    """The reconnection delay for EventSource clients (sent once, first)."""
    return format_sse_event(retry=RETRY_MS)
