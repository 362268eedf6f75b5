"""Local worker processes for `serve`: spawned, watched, restarted when they die, stopped on exit."""
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pydantic import SecretStr

from ..settings import Settings
from .threads import thread_env

log = logging.getLogger("needle_service.pool")
WATCH_SECONDS = 0.5
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])  # so `-m service.cli` imports this checkout


class WorkerPool:
    """`settings.workers` real worker processes running `python -m service.cli worker`."""

    def __init__(self, settings: Settings, command: list[str] | None = None):
        self.settings = settings
        self.command = command or [sys.executable, "-m", "service.cli", "worker"]
        self.procs: list[subprocess.Popen | None] = []
        self.started_at: list[float] = []
        self.failures: list[int] = []      # quick consecutive deaths per slot (restart backoff)
        self.died_at: list[float | None] = []
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def worker_env(self) -> dict[str, str]:
        """The parent's environment + every setting as NEEDLE_* + thread caps (BLAS, needle). Secrets
        (the admin key) are left out: workers never need them, and str() of a SecretStr is a
        mask that would fail the worker's own settings validation."""
        env = dict(os.environ)
        for name, value in self.settings.model_dump().items():
            key = f"NEEDLE_{name.upper()}"
            if value is None or isinstance(value, SecretStr):
                env.pop(key, None)
            else:
                env[key] = str(value)
        env.update(thread_env(self.settings.worker_threads))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PROJECT_ROOT, env.get("PYTHONPATH")) if p)
        return env

    def _spawn(self) -> subprocess.Popen:
        # A session of their own: a terminal's Ctrl-C reaches the server, which stops them in order.
        return subprocess.Popen([*self.command, "--parent-pid", str(os.getpid())], env=self.worker_env(),
                                start_new_session=True, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        """Spawn the workers and a thread that restarts any that die."""
        with self._lock:
            for _ in range(self.settings.workers):
                self.procs.append(self._spawn())
                self.started_at.append(time.monotonic())
                self.failures.append(0)
                self.died_at.append(None)
        self._watcher = threading.Thread(target=self._watch, name="worker-pool", daemon=True)
        self._watcher.start()
        log.info("started %d worker processes", self.settings.workers)

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            with self._lock:
                for slot, proc in enumerate(self.procs):
                    if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                        self._restart(slot, proc.returncode)

    def _restart(self, slot: int, code: int) -> None:
        """Replace a dead worker; one that keeps dying soon after start waits longer each time."""
        now = time.monotonic()
        if self.died_at[slot] is None:
            self.died_at[slot] = now
            quick = now - self.started_at[slot] < 10
            self.failures[slot] = self.failures[slot] + 1 if quick else 0
            log.warning("worker pid %d exited with code %s", self.procs[slot].pid, code)
        delay = min(30.0, 0.25 * 2 ** self.failures[slot]) if self.failures[slot] > 1 else 0.0
        if now < self.died_at[slot] + delay:
            return  # retried on a later watch tick
        self.procs[slot] = self._spawn()
        self.started_at[slot], self.died_at[slot] = time.monotonic(), None
        self.restarts += 1

    def alive(self) -> int:
        """Worker processes currently running."""
        with self._lock:
            return sum(1 for p in self.procs if p is not None and p.poll() is None)

    def pids(self) -> list[int]:
        """PIDs of the running workers."""
        with self._lock:
            return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM every worker (they checkpoint and release their jobs), SIGKILL after `timeout`."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join()
        with self._lock:
            procs = [p for p in self.procs if p is not None]
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in %.0f s; killing it", proc.pid, timeout)
                _signal(proc, signal.SIGKILL)
                proc.wait()
        log.info("worker pool stopped")


def _signal(proc: subprocess.Popen, signum: int) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass
