"""The wire form of a job's events: encoded once, shared by every stream that sends them."""
from fastapi.sse import format_sse_event

from ...jobs import Job, MetricPoint
from ..schemas import JobOut, MetricPointOut

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
    """`event: metric`, its id the point's seq, its data the point as /metrics returns it."""
    return format_sse_event(event="metric", id=str(point.seq),
                            data_str=MetricPointOut.from_point(point).model_dump_json())


def retry_field() -> bytes:
    """The reconnection delay for EventSource clients (sent once, first)."""
    return format_sse_event(retry=RETRY_MS)
