"""Waking the streams of a changed job a few per event-loop turn, not all at once.

Each woken stream writes its chunk in one step of the event loop. Woken all at once (as an
asyncio.Event wakes its waiters), 100 streams on a busy job run back to back in one loop turn, and
a GET that arrives meanwhile waits for all 100 writes (tens of milliseconds on a loaded machine).
The loop polls its sockets between turns, so waking WAKE_PER_TURN streams per turn lets other
requests in between them: a GET waits for a couple of stream writes at most, and the last stream
of the crowd still gets its chunk within milliseconds.
"""
import asyncio
from collections import deque
from collections.abc import Iterable

WAKE_PER_TURN = 2


class Wakeups:
    """One per event loop: wakes queued waiters in order, `per_turn` per loop turn."""

    def __init__(self, per_turn: int = WAKE_PER_TURN):
        self.per_turn = per_turn
        self._queue: deque[asyncio.Future] = deque()
        self._scheduled = False

    def wake(self, waiters: Iterable[asyncio.Future]) -> None:
        """Queue these waiters to be woken (on the loop's thread)."""
        self._queue.extend(waiters)
        if self._queue and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._wake_some)

    def _wake_some(self) -> None:
        woken = 0
        while self._queue and woken < self.per_turn:
            waiter = self._queue.popleft()
            if not waiter.done():  # a stream whose wait timed out (keep-alive) is skipped
                waiter.set_result(None)
                woken += 1
        if self._queue:
            # scheduled after the woken streams' steps: they run in the next turn, then this
            asyncio.get_running_loop().call_soon(self._wake_some)
        else:
            self._scheduled = False


class Change:
    """The next change of a feed (set once, like an asyncio.Event): its waiters are woken
    through the process's Wakeups."""

    def __init__(self, wakeups: Wakeups):
        self._wakeups = wakeups
        self._waiters: dict[asyncio.Future, None] = {}  # an ordered set: woken first come first
        self._happened = False

    def is_set(self) -> bool:
        """True once the change happened."""
        return self._happened

    def set(self) -> None:
        """The change happened: wake every waiter (a few per loop turn)."""
        self._happened = True
        self._wakeups.wake(list(self._waiters))
        self._waiters.clear()

    async def wait(self) -> None:
        """Until the change happened (at once if it has)."""
        if self._happened:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[waiter] = None
        try:
            await waiter
        finally:  # cancelled (a keep-alive timeout): no longer waiting
            self._waiters.pop(waiter, None)
