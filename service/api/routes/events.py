"""A job's live event stream (server-sent events)."""
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.sse import EventSourceResponse

from ..params import MAX_SEQ, JobId
from ..deps import CurrentPrincipal, SettingsDep, StoreDep, quick_read
from ..errors import validation_error
from ..streams import job_event_stream

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
STREAM_DOC = """`text/event-stream`, in this order:

* `event: status` — the job exactly as `GET /v1/jobs/{id}` returns it; first, then on every
  change of status or progress;
* `event: metric` — one per metric point, `id:` its `seq`, data the point as `/metrics` returns it;
* `event: end` — the final job, once it has ended and every point was sent; then the stream closes.

`: keep-alive` comments while nothing happens. Resume after a disconnect with the `Last-Event-ID`
header (EventSource does this by itself) or `?after=<seq>`: nothing lost, nothing repeated. A
stream opened on a finished job replays the points after the cursor and ends."""


# response_class stays the default: FastAPI would treat an EventSourceResponse route as a
# generator of events; this one returns a stream of pre-encoded events shared between clients.
@router.get("/{job_id}/events", response_class=Response, summary="Follow a job live",
            description=STREAM_DOC,
            responses={200: {"description": "The event stream",
                             "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                       404: {"description": "Unknown job"},
                       422: {"description": "Bad cursor"}})
async def job_events(job_id: JobId, request: Request, store: StoreDep, settings: SettingsDep,
                     principal: CurrentPrincipal,
                     after: Annotated[int, Query(ge=0, le=MAX_SEQ,
                                                 description="Send points with seq > after")] = 0,
                     last_event_id: Annotated[str | None, Header(
                         max_length=18, pattern=r"^\s*[0-9]*\s*$",
                         description="the `id:` of the last event received (a metric seq)")] = None,
                     ) -> EventSourceResponse:
    """Status, metric points and the end of one job, pushed as they are stored."""
    cursor = _cursor(after, last_event_id)
    # 404 (unknown, or another tenant's) before the stream starts; the stream then follows by id
    job = await quick_read(store, store.get_job, job_id, with_spec=False,
                           tenant=principal.tenant_filter)
    stream = job_event_stream(request.app.state.events, job, cursor, settings.events_keepalive_seconds)
    return EventSourceResponse(stream, headers={"Cache-Control": "no-cache",
                                                "X-Accel-Buffering": "no"})


def _cursor(after: int, last_event_id: str | None) -> int:
    """Last-Event-ID (an EventSource reconnecting) wins over ?after= (the URL it first opened)."""
    if last_event_id is None or not last_event_id.strip():
        return after
    try:
        cursor = int(last_event_id)
    except ValueError:
        cursor = -1
    if cursor < 0:
        raise validation_error([(("header", "last-event-id"), "must be a metric seq (an integer "
                                 ">= 0)", last_event_id)])
    return cursor
