"""Stored metric points replayed to streams, a page read once for every stream asking for it.

A stream behind what its job's feed holds (a dashboard opened on a long job, a reconnect after a
while) replays from the store, a page of REPLAY_PAGE points at a time. Streams opened together
from the same cursor ask for the same pages at the same time: 100 viewers of a job 30,000 points
behind would each read and encode the same 30,000 points. Here a page wanted by several streams
at once is read once and handed to all of them. Nothing is kept once the read is done: a job
that resumes from a checkpoint drops the points after it (JobStore.truncate_metrics), so a page
kept for later could send points /metrics no longer has.
"""
import asyncio

from starlette.concurrency import run_in_threadpool

from ...jobs import JobStore
from .encoding import metric_event

REPLAY_PAGE = 2_000  # points per replay read; on a thread, so a long replay never stalls the loop

Page = tuple[bytes, int, int]  # (the encoded events, the last point's seq, the number of points)


class ReplayPages:
    """Pages of stored metric events after a cursor, shared by the streams of one API process."""

    def __init__(self, store: JobStore):
        self.store = store
        self._reading: dict[tuple[str, int], asyncio.Future] = {}
        self.reads = 0  # store reads made (the tests count them)

    async def page(self, job_id: str, cursor: int) -> Page:
        """The page after `cursor`: from a read of it already under way, or read now."""
        key = (job_id, cursor)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read(key))  # not tied to the asking stream
            self._reading[key] = reading
        return await asyncio.shield(reading)  # a stream that goes away leaves the read to others

    async def _read(self, key: tuple[str, int]) -> Page:
        try:
            self.reads += 1
            points = await run_in_threadpool(self.store.get_metrics, key[0], after=key[1],
                                             limit=REPLAY_PAGE)
            return (b"".join(metric_event(p) for p in points),
                    points[-1].seq if points else key[1], len(points))
        finally:
            del self._reading[key]
