"""The API's event-loop connections for its hot reads (psycopg's AsyncConnection).

A job poll or a stream's read that hops to a threadpool thread must win the GIL back from the
event loop twice (to send, and to take the rows); while the loop is busy writing to hundreds of
streams that wait lasts up to the interpreter's 5 ms switch interval. On the loop itself the read
waits on its socket like any other I/O and costs no hand-off. Reads only, and lost connections
are retried with backoff as the blocking pool does (postgres_pool.run_with_retry).
"""
import asyncio
import logging
import os
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg import pq

from .postgres_pool import FIRST_RETRY_SECONDS, MAX_RETRY_SECONDS, connect_kwargs
from .postgres_reads import Steps, run_steps_async

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncReadPool:
    """Up to max_size connections of the event loop that uses them (a new loop, as in a new
    process or test, starts afresh: connections belong to one loop)."""

    def __init__(self, url: str, max_size: int, connect_timeout: float, retry_seconds: float):
        self._url, self._max_size = url, max_size
        self._connect_timeout, self._retry_seconds = connect_timeout, retry_seconds
        self._owner: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[psycopg.AsyncConnection] = []

    async def run(self, make_steps: Callable[[], Steps[T]]) -> T:
        """Run a read (a fresh make_steps() per try) on one of the loop's connections."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_seconds
        delay, tries = FIRST_RETRY_SECONDS, 0
        while True:
            try:
                return await self._run_once(loop, make_steps())
            except psycopg.OperationalError as exc:
                tries += 1
                if loop.time() + delay > deadline:
                    raise
                log.warning("postgres (async): %s; retry %d in %.2fs", str(exc).strip(), tries, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)

    async def _run_once(self, loop: asyncio.AbstractEventLoop, steps: Steps[T]) -> T:
        if self._owner != (os.getpid(), loop):
            self.close()
            self._owner, self._slots = (os.getpid(), loop), asyncio.Semaphore(self._max_size)
        async with self._slots:
            conn = self._idle.pop() if self._idle else await psycopg.AsyncConnection.connect(
                self._url, **connect_kwargs(self._url, self._connect_timeout))
            try:
                return await run_steps_async(conn, steps)
            finally:  # a broken connection, or one cancelled mid-query, is not reused
                if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    _finish(conn)
                else:
                    self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections (synchronously: closing only hangs up the socket)."""
        idle, self._idle = self._idle, []
        if self._owner is not None and self._owner[0] != os.getpid():
            return  # a forked child's inherited connections are its parent's: leave them be
        for conn in idle:
            _finish(conn)


def _finish(conn: psycopg.AsyncConnection) -> None:
    conn.pgconn.finish()  # what AsyncConnection.close() does, without a coroutine
