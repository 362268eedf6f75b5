"""One LISTENing connection per process that turns PostgreSQL notifications into callbacks.

Migration 3's triggers NOTIFY `needle_events:<schema>` with the job id whenever a job's status or
progress changes or a metric point is inserted, from whatever process wrote it; the API's event
followers are woken by this instead of polling.
"""
import logging
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)
EVENTS_CHANNEL = "needle_events:"  # + the schema (channels are database-wide)
WAKE_SECONDS = 0.5                 # how often the thread looks at its stop flag


class ChangeListener:
    """A daemon thread: LISTEN, forward each notification's job id; reconnect with backoff."""

    def __init__(self, connect: Callable[[], psycopg.Connection],
                 on_change: Callable[[str | None], None]):
        self._connect = connect
        self._on_change = on_change
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="needle-events-listener",
                                        daemon=True)

    def start(self) -> None:
        """Start listening (returns at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (within WAKE_SECONDS) and close its connection."""
        self._stopped.set()
        self._thread.join(timeout=WAKE_SECONDS * 4)

    def _run(self) -> None:
        delay = 0.05
        while not self._stopped.is_set():
            try:
                self._listen()
                return
            except psycopg.Error as exc:
                log.warning("event listener: %s; reconnecting in %.2fs", str(exc).strip(), delay)
                self._on_change(None)  # notifications may have been lost meanwhile
                self._stopped.wait(delay)
                delay = min(delay * 2, 2.0)

    def _listen(self) -> None:
        conn = self._connect()
        try:
            schema = conn.execute("SELECT COALESCE(current_schema(), '')").fetchone()[0]
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(EVENTS_CHANNEL + schema)))
            self._on_change(None)  # anything committed before LISTEN took effect
            while not self._stopped.is_set():
                for notify in conn.notifies(timeout=WAKE_SECONDS):
                    self._on_change(notify.payload)
        finally:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
