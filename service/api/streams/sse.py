"""One client's event stream: status first, then metric points and status changes as the hub sees
them, then `end`. Resumes after a cursor (Last-Event-ID / ?after=) without loss or repetition:
points are sent in seq order and only those with seq > the last one sent."""
import asyncio
from collections.abc import AsyncIterator

from ...jobs import Job
from .encoding import KEEPALIVE, end_event, job_json, retry_field, status_event
from .hub import EventHub, JobFeed
from .replay import REPLAY_PAGE, ReplayPages


async def job_event_stream(hub: EventHub, job: Job, cursor: int,
                           keepalive_seconds: float) -> AsyncIterator[bytes]:
    """The stream of `job` (just read by the route, so it exists) from after `cursor`."""
    if job.status.terminal:  # nothing will change: replay what is asked for and end
        data = job_json(job)
        yield retry_field() + status_event(data)
        async for chunk, cursor in _replay(hub.replay, job.id, cursor, None):
            yield chunk
        yield end_event(data)
        return
    feed = await hub.subscribe(job.id, cursor)
    try:
        async for chunk in _follow(feed, hub.replay, cursor, keepalive_seconds):
            yield chunk
    finally:
        hub.unsubscribe(feed)


async def _follow(feed: JobFeed, replay: ReplayPages, cursor: int,
                  keepalive_seconds: float) -> AsyncIterator[bytes]:
    sent_status = feed.status_version
    yield retry_field() + feed.status
    while not feed.gone:
        changed = feed.changed()  # taken before reading the feed, so no change slips by
        if cursor < feed.base_seq:  # behind what the feed holds: from the store first
            async for chunk, cursor in _replay(replay, feed.job_id, cursor, feed.base_seq):
                yield chunk
            cursor = max(cursor, feed.base_seq)  # the replay sent every stored point up to base
        # what is new goes out in one chunk: one send, one socket write per change
        parts = []
        points, cursor = feed.events_after(cursor)
        if points:
            parts.append(points)
        if feed.status_version != sent_status:
            sent_status = feed.status_version
            parts.append(feed.status)
        ended = feed.terminal and cursor >= feed.last_seq
        if ended:
            parts.append(end_event(feed.job_data))
        if parts:
            yield b"".join(parts)  # (a join of one part is that part, not a copy)
        if ended:
            return
        try:
            async with asyncio.timeout(keepalive_seconds):
                await changed.wait()
        except TimeoutError:
            yield KEEPALIVE


async def _replay(replay: ReplayPages, job_id: str, cursor: int,
                  until: int | None) -> AsyncIterator[tuple[bytes, int]]:
    """Stored points after cursor, a page per chunk, while cursor < until (None: all)."""
    while until is None or cursor < until:
        chunk, last_seq, count = await replay.page(job_id, cursor)
        if not count:
            return
        cursor = last_seq
        yield chunk, cursor
        if count < REPLAY_PAGE:
            return
