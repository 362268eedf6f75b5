"""Stored metric points replayed to streams, a page read once for every stream that wants it.

A stream behind what its job's feed holds (a dashboard opened on a long job, a reconnect after a
while) replays from the store, a page of REPLAY_PAGE points at a time. Streams opened together
from the same cursor ask for the same pages: 100 viewers of a job 30,000 points behind would each
read and encode the same 30,000 points (measured: the API's CPU then grew round after round in
bench/bench_streams.py as the jobs got longer). Here a page is read once: the streams asking for
it meanwhile wait for that read, and full pages stay in a small cache for those that come later.
Only full pages are kept: a job's points are append-only, so the REPLAY_PAGE points after a
cursor never change once they exist, while a short page may still grow.
"""
import asyncio
from collections import OrderedDict

from starlette.concurrency import run_in_threadpool

from ...jobs import JobStore
from .encoding import metric_event

REPLAY_PAGE = 2_000  # points per replay read; on a thread, so a long replay never stalls the loop
CACHE_BYTES = 16 << 20  # encoded full pages kept (~200 bytes a point: ~40 pages)

Page = tuple[bytes, int, int]  # (the encoded events, the last point's seq, the number of points)


class ReplayPages:
    """Pages of stored metric events after a cursor, shared by the streams of one API process."""

    def __init__(self, store: JobStore):
        self.store = store
        self._reading: dict[tuple[str, int], asyncio.Future] = {}
        self._cache: OrderedDict[tuple[str, int], Page] = OrderedDict()
        self._cached_bytes = 0
        self.reads = 0  # store reads made (the tests count them)

    async def page(self, job_id: str, cursor: int) -> Page:
        """The page after `cursor`: from the cache, from a read already under way, or read now."""
        key = (job_id, cursor)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
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
            page = (b"".join(metric_event(p) for p in points),
                    points[-1].seq if points else key[1], len(points))
            if len(points) == REPLAY_PAGE:
                self._keep(key, page)
            return page
        finally:
            del self._reading[key]

    def _keep(self, key: tuple[str, int], page: Page) -> None:
        self._cache[key] = page
        self._cached_bytes += len(page[0])
        while self._cached_bytes > CACHE_BYTES:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped[0])
