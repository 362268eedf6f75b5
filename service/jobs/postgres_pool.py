"""The per-process PostgreSQL connection pool, and retrying lost connections with backoff.

A pool inherited through fork() is abandoned (never closed: that would hang up the parent's
sessions) and rebuilt. A lost connection (server restart, pg_terminate_backend, network blip) is
retried with exponential backoff; operations that are not naturally idempotent pass a `recover`
that checks on retry whether their first try already committed.
"""
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg import pq

log = logging.getLogger(__name__)
T = TypeVar("T")
# Retries of a lost connection wait FIRST_RETRY_SECONDS, doubling up to MAX_RETRY_SECONDS.
FIRST_RETRY_SECONDS = 0.05
MAX_RETRY_SECONDS = 2.0
# Returned by a `recover` callback when the failed try did not commit (so op runs again).
NOT_RECOVERED = object()


def connect_kwargs(url: str, connect_timeout: float) -> dict[str, Any]:
    """Settings of every connection: autocommit, a connect timeout, keepalives, a name."""
    # Keepalives notice a silently dead peer (host gone, NAT dropped) within about a minute.
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(connect_timeout)),
                              "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                              "keepalives_count": 3}
    if "application_name" not in url:
        kwargs["application_name"] = f"needle-service[{os.getpid()}]"
    return kwargs


class ConnectionPool:
    """A few autocommit connections per process; rebuilt from scratch in a forked child."""

    def __init__(self, url: str, max_size: int, connect_timeout: float):
        self._url = url
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._reset()

    def _reset(self) -> None:
        # Called in a forked child too: the parent's lock may have been held at fork time, and
        # its connections belong to the parent (psycopg never hangs up a socket from another pid).
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._max_size)
        self._idle: list[psycopg.Connection] = []

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """Borrow a connection; a broken one is thrown away instead of returned."""
        if os.getpid() != self._pid:
            self._reset()
        self._slots.acquire()
        conn = None
        try:
            conn = self._take_idle() or self._connect()
            yield conn
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    def _take_idle(self) -> psycopg.Connection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def open_unpooled(self) -> psycopg.Connection:
        """A connection with the pool's settings that the caller owns and closes."""
        return self._connect()

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self._url, **connect_kwargs(self._url, self._connect_timeout))

    def _give_back(self, conn: psycopg.Connection) -> None:
        if conn.closed or conn.broken or conn.info.transaction_status != pq.TransactionStatus.IDLE:
            self.close_quietly(conn)
            return
        with self._lock:
            self._idle.append(conn)

    @staticmethod
    def close_quietly(conn: psycopg.Connection) -> None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - it is already unusable; nothing to report
            pass

    def close(self) -> None:
        """Close the idle connections of this process."""
        if os.getpid() != self._pid:
            self._reset()
            return
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self.close_quietly(conn)


def run_with_retry(pool: ConnectionPool, retry_seconds: float, op: Callable[[psycopg.Connection], T],
                   recover: Callable[[psycopg.Connection], Any] | None = None) -> T:
    """Run op on a pooled connection, retrying lost connections with exponential backoff.

    On a retry, `recover` (if given) runs first: it returns the op's result when the failed
    try turns out to have committed, or NOT_RECOVERED to run op again.
    """
    deadline = time.monotonic() + retry_seconds
    delay, tries = FIRST_RETRY_SECONDS, 0
    while True:
        try:
            with pool.connection() as conn:
                if tries and recover is not None:
                    recovered = recover(conn)
                    if recovered is not NOT_RECOVERED:
                        return recovered
                return op(conn)
        except psycopg.OperationalError as exc:
            tries += 1
            if time.monotonic() + delay > deadline:
                raise
            log.warning("postgres: %s; retry %d in %.2fs", str(exc).strip(), tries, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
