"""One follower per API process for every job an event stream is open on.

The hub reads the store for all followed jobs at once (`watch_marks`: one query) every
`poll_seconds`, or, on PostgreSQL, when a NOTIFY says a job changed (with a slow poll as a safety
net). Only jobs whose mark moved are read further (the job row, the new metric points), once, and
the encoded events are kept in the job's feed, which all of the job's streams send from. So 200
streams on one job cost one store read per change, not 200, and a stream that waits costs nothing
but a parked coroutine. The hub reads in pages with a loop turn between them, and a change wakes
the job's streams a few per loop turn (wakeups.py): requests that arrive meanwhile are served
between them instead of after all of them.
"""
import asyncio
import bisect
import dataclasses
import logging

from ...jobs import JobMark, JobStore, NotFound
from ..deps import quick_read
from .encoding import job_json, metric_event, status_event
from .replay import ReplayPages
from .wakeups import Change, Wakeups

log = logging.getLogger("needle_service.events")
# metric points per store read. A store with local reads (SQLite) reads inline, so its pages are
# kept to about a third of a millisecond of the event loop (~6 us a point) and the loop gets a
# turn between pages; a remote store's reads wait for the network without holding the loop
# (PostgreSQL's are coroutines: JobStore.coroutine_of), and fewer, bigger pages mean fewer round
# trips.
LOCAL_PAGE = 50
REMOTE_PAGE = 100
WINDOW_POINTS = 20_000   # recent encoded points a feed keeps; older ones are re-read from the store
BACKFILL_POINTS = 5_000  # how far before the newest point a new feed may start
ERROR_BACKOFF_SECONDS = 1.0
# After a NOTIFY the hub waits this long before it reads: a worker's flush is two transactions
# (the points, then the progress) whose notifications arrive a few ms apart, and read together
# they wake each stream once instead of twice. SQLite's poll gathers them by itself.
PUSH_SETTLE_SECONDS = 0.02


class JobFeed:
    """What the hub knows about one followed job, shared by its streams (read-only for them)."""

    def __init__(self, job_id: str, mark: JobMark, job_data: str, terminal: bool,
                 wakeups: Wakeups):
        self.job_id = job_id
        self.mark = mark
        self.job_data = job_data            # the job JSON as GET /v1/jobs/{id} returns it
        self.status = status_event(job_data)
        self.status_version = 0
        self.terminal = terminal
        self.gone = False                   # deleted, or the server is shutting down
        self.base_seq = mark.last_seq       # points up to here are read from the store
        self.last_seq = mark.last_seq       # newest point the feed holds
        self._seqs: list[int] = []
        self._events: list[bytes] = []
        self._joined = (0, 0, b"")          # (start, end, the events start:end joined)
        self._wakeups = wakeups
        self._changed = Change(wakeups)
        self.subscribers = 0

    def changed(self) -> Change:
        """Set at the feed's next change; take it before reading the feed, then wait on it."""
        return self._changed

    def events_after(self, cursor: int) -> tuple[bytes, int]:
        """The encoded metric events with seq > cursor (>= base_seq) and the last one's seq."""
        start, end = bisect.bisect_right(self._seqs, cursor), len(self._seqs)
        if start == end:
            return b"", cursor
        if self._joined[:2] != (start, end):  # the streams of a job mostly share their cursor:
            self._joined = (start, end, b"".join(self._events[start:]))  # joined once for all
        return self._joined[2], self._seqs[-1]

    # ---- hub side ----
    def _publish(self) -> None:
        old, self._changed = self._changed, Change(self._wakeups)
        old.set()

    def _set_job(self, job_data: str, terminal: bool) -> None:
        if job_data != self.job_data:
            self.job_data, self.status = job_data, status_event(job_data)
            self.status_version += 1
        self.terminal = terminal

    def _add_points(self, points) -> None:
        self._seqs.extend(p.seq for p in points)
        self._events.extend(metric_event(p) for p in points)
        self.last_seq = self._seqs[-1]
        if len(self._seqs) > WINDOW_POINTS:  # keep the newest half; laggards read the store
            drop = len(self._seqs) - WINDOW_POINTS // 2
            self.base_seq = self._seqs[drop - 1]
            del self._seqs[:drop], self._events[:drop]
            self._joined = (0, 0, b"")


class EventHub:
    """Follows the jobs that have open streams; see the module docstring."""

    def __init__(self, store: JobStore, *, poll_seconds: float, push_poll_seconds: float):
        self.store = store
        self.replay = ReplayPages(store)  # stored pages for streams behind their feed
        self.poll_seconds = poll_seconds
        self.page = LOCAL_PAGE if store.local_reads else REMOTE_PAGE
        self.push_poll_seconds = push_poll_seconds
        self._feeds: dict[str, JobFeed] = {}
        self._dirty: set[str] = set()
        self._all_dirty = False
        self._wake = asyncio.Event()
        self._wakeups = Wakeups()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._stop_push = None
        self.closing = False

    @property
    def pushes(self) -> bool:
        """True when the store pushes changes (PostgreSQL), False when the hub polls (SQLite)."""
        return self._stop_push is not None

    def open_streams(self) -> int:
        """Streams currently subscribed to some feed."""
        return sum(feed.subscribers for feed in self._feeds.values())

    async def start(self) -> None:
        """Begin following (on the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._stop_push = self.store.watch_changes(self._pushed_from_thread)
        self._task = self._loop.create_task(self._run(), name="needle-event-hub")

    async def close(self) -> None:
        """End every stream (they see their feed gone) and stop following; idempotent."""
        if self.closing:
            return
        self.closing = True
        for feed in self._feeds.values():
            feed.gone = True
            feed._publish()
        if self._stop_push is not None:
            await asyncio.to_thread(self._stop_push)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def subscribe(self, job_id: str, cursor: int) -> JobFeed:
        """The job's feed (made on first use); NotFound for an unknown job. A new feed starts
        at the first stream's cursor (at most BACKFILL_POINTS back): streams opened together
        from the same point, as dashboards do, then share one store read of the gap instead of
        each replaying it."""
        feed = self._feeds.get(job_id)
        if feed is None:
            marks = await quick_read(self.store, self.store.watch_marks, [job_id])
            if job_id not in marks:
                raise NotFound(f"job {job_id} not found")
            job = await quick_read(self.store, self.store.get_job, job_id, with_spec=False)
            feed = self._feeds.get(job_id)  # another stream may have made it meanwhile
            if feed is None:
                mark = marks[job_id]
                if not job.status.terminal:  # (a finished job's feed is never read again)
                    start = max(min(cursor, mark.last_seq), mark.last_seq - BACKFILL_POINTS)
                    mark = dataclasses.replace(mark, last_seq=start)
                    self._dirty.add(job_id)  # the next look reads the points after start
                feed = JobFeed(job_id, mark, job_json(job), job.status.terminal, self._wakeups)
                self._feeds[job_id] = feed
                self._wake.set()
        feed.subscribers += 1
        if self.closing:
            feed.gone = True
        return feed

    def unsubscribe(self, feed: JobFeed) -> None:
        """A stream ended; the last one out drops the feed."""
        feed.subscribers -= 1
        if feed.subscribers <= 0 and self._feeds.get(feed.job_id) is feed:
            del self._feeds[feed.job_id]

    # ---- following ----
    def _pushed_from_thread(self, job_id: str | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._mark_dirty, job_id)

    def _mark_dirty(self, job_id: str | None) -> None:
        if job_id is None:
            self._all_dirty = True
        elif job_id in self._feeds:
            self._dirty.add(job_id)
        else:
            return
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wait()
            ids = self._take_dirty()
            if not ids:
                continue
            try:
                await self._refresh(ids)
            except Exception as exc:  # a store outage: streams keep waiting (and keep alive)
                log.warning("event hub: store read failed: %s", exc)
                self._all_dirty = True
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)

    async def _wait(self) -> None:
        """Until pushed (or a new feed), or the poll interval has passed (then look at all)."""
        if not self._feeds:
            await self._wake.wait()
        else:
            timeout = self.push_poll_seconds if self.pushes else self.poll_seconds
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                self._all_dirty = True
            else:
                if self.pushes:  # the rest of the writer's burst comes along (see PUSH_SETTLE)
                    await asyncio.sleep(PUSH_SETTLE_SECONDS)
        self._wake.clear()

    def _take_dirty(self) -> list[str]:
        if self._all_dirty:
            ids = [job_id for job_id, feed in self._feeds.items() if not feed.terminal]
        else:
            ids = [job_id for job_id in self._dirty if job_id in self._feeds]
        self._dirty.clear()
        self._all_dirty = False
        return ids

    async def _refresh(self, job_ids: list[str]) -> None:
        marks = await quick_read(self.store, self.store.watch_marks, job_ids)
        for job_id in job_ids:
            feed = self._feeds.get(job_id)
            if feed is None:
                continue
            mark = marks.get(job_id)
            if mark is None:  # deleted
                feed.gone = True
                feed._publish()
            elif mark != feed.mark:
                try:
                    await self._read_changes(feed, mark)
                except NotFound:  # deleted between the two reads
                    feed.gone = True
                feed._publish()
                await asyncio.sleep(0)  # a loop turn before the next job's reads

    async def _read_changes(self, feed: JobFeed, mark: JobMark) -> None:
        """The job row first, then its new points: every point written before the status we
        publish (a worker flushes its points before it ends the job) is among them."""
        state_moved = (mark.status, mark.progress, mark.attempt, mark.cancel_requested) != (
            feed.mark.status, feed.mark.progress, feed.mark.attempt, feed.mark.cancel_requested)
        if state_moved:
            job = await quick_read(self.store, self.store.get_job, feed.job_id, with_spec=False)
            feed._set_job(job_json(job), job.status.terminal)
        feed.mark = mark
        if not state_moved and mark.last_seq <= feed.last_seq:
            return
        while True:
            points = await quick_read(self.store, self.store.get_metrics, feed.job_id,
                                      after=feed.last_seq, limit=self.page)
            if points:
                feed._add_points(points)
            if len(points) < self.page:
                return
            await asyncio.sleep(0)  # a loop turn between pages: requests are not held up
