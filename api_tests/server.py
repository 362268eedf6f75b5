"""Run `needle-service serve` in a subprocess on a free port and talk to it over HTTP only."""
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

TERMINAL = {"succeeded", "failed", "cancelled", "pruned"}
FAST_WORKER_ENV = {"NEEDLE_POLL_SECONDS": "0.02", "NEEDLE_HEARTBEAT_SECONDS": "0.5",
                   "NEEDLE_WORKER_NICE": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll until predicate() is truthy and return its value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def spawn_cli(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start `python -m service.cli ARGS`, its output appended to log_path (a file, not a pipe:
    a full pipe would stall the process)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def wait_answering(client: httpx.Client, process: subprocess.Popen, path: str, timeout: float,
                   name: str, log: Callable[[], str]) -> None:
    """Poll GET path until it answers 200; fail at once, with log(), if the process exits."""
    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the {name} exited early:\n{log()}")
        try:
            return client.get(path).status_code == 200
        except httpx.TransportError:
            return False
    wait_for(answers, timeout, f"the {name} to answer {path}")


def child_stats(parent_pid: int) -> dict[int, list[str]]:
    """/proc/PID/stat fields after the command name (state, ppid, ..., utime at 11, stime at 12)
    of parent_pid's child processes, by pid."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent_pid:
                children[int(entry.name)] = fields
    return children


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process now (VmRSS from /proc/PID/status), or its peak (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for process {pid}")


def terminate(processes: Iterable[subprocess.Popen], timeout: float) -> None:
    """Graceful shutdown (SIGTERM to all at once, as an operator would do); SIGKILL whoever is
    still alive after timeout seconds."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """One `needle-service serve` process with its data dir, log file and an httpx client."""

    def __init__(self, data_dir: Path, *, workers: int, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.workers = workers
        self.env = {**os.environ, **FAST_WORKER_ENV, **(env or {})}
        self.log_path = data_dir / "server.log"
        self.process: subprocess.Popen | None = None
        self.client: httpx.Client | None = None

    def start(self) -> "Server":
        """Start on a fresh port and wait until /readyz says ready."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.process = spawn_cli(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                                  str(self.data_dir), "--workers", str(self.workers), "--log-level",
                                  "warning"], self.env, self.log_path)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        wait_answering(self.client, self.process, "/readyz", 60, "server", self.log)
        return self

    def create_key(self, name: str, *options: str) -> str:
        """`needle-service keys create --name NAME OPTIONS` on this server's store (before or
        after start); returns the key, which the command prints alone on its last line."""
        done = subprocess.run([sys.executable, "-m", "service.cli", "keys", "create", "--name",
                               name, *options, "--data-dir", str(self.data_dir)], env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def keys_command(self, *args: str) -> subprocess.CompletedProcess:
        """Another `needle-service keys ...` command on this server's store."""
        return subprocess.run([sys.executable, "-m", "service.cli", "keys", *args, "--data-dir",
                               str(self.data_dir)], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def client_for(self, key: str) -> httpx.Client:
        """A client of this server that sends `key` as its bearer token (close it when done)."""
        return httpx.Client(base_url=self.client.base_url, timeout=30,
                            headers={"Authorization": f"Bearer {key}"})

    def serving_keys(self, keys: dict[str, str]):
        """Start, yield (self, {name: client sending that key}), then close the clients and stop:
        the body of a module fixture for a keyed server."""
        self.start()
        clients = {name: self.client_for(key) for name, key in keys.items()}
        yield self, clients
        for client in clients.values():
            client.close()
        self.stop()

    def log(self) -> str:
        """The tail of the server's output (for assertion messages)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def rss(self) -> int:
        """The API process's resident memory in bytes (workers not included)."""
        return rss_bytes(self.process.pid)

    def peak_rss(self) -> int:
        """The API process's highest resident memory so far (VmHWM): catches what a request
        allocated and freed before it answered."""
        return rss_bytes(self.process.pid, "VmHWM")

    def worker_pids(self) -> list[int]:
        """PIDs of this server's child processes (its workers), read from /proc."""
        return list(child_stats(self.process.pid))

    def stop(self) -> None:
        """Graceful shutdown (SIGTERM), as an operator would do."""
        if self.client is not None:
            self.client.close()
        if self.process is not None:
            terminate([self.process], 30)

    def kill(self) -> None:
        """SIGKILL the server process only (its workers notice their parent is gone)."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.client.close()

    # ---- HTTP helpers ----
    def submit(self, spec: dict, **headers) -> dict:
        """POST a job that must be accepted; returns the job."""
        response = self.client.post("/v1/jobs", json=spec, headers=headers)
        assert response.status_code in (200, 202), response.text
        return response.json()

    def job(self, job_id: str) -> dict:
        """GET one job."""
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_until(self, job_id: str, condition, timeout: float = 60, what: str = "",
                   interval: float = 0.05) -> dict:
        """Poll the job until condition(job) holds."""
        def check():
            job = self.job(job_id)
            return job if condition(job) else None
        return wait_for(check, timeout, what or f"job {job_id}", interval)

    def finish(self, job_id: str, timeout: float = 60, interval: float = 0.05) -> dict:
        """Poll until the job has ended; returns it."""
        return self.wait_until(job_id, lambda job: job["status"] in TERMINAL, timeout,
                               f"job {job_id} to end", interval)

    def train(self, spec: dict, timeout: float = 60, interval: float = 0.05) -> dict:
        """Submit and wait for success."""
        job = self.finish(self.submit(spec)["id"], timeout, interval)
        assert job["status"] == "succeeded", (job["error"], self.log())
        return job

    def submit_sweep(self, sweep: dict) -> dict:
        """POST a sweep that must be accepted; returns it."""
        response = self.client.post("/v1/sweeps", json=sweep)
        assert response.status_code == 202, response.text
        return response.json()

    def sweep(self, sweep_id: str) -> dict:
        """GET one sweep (with its trials)."""
        response = self.client.get(f"/v1/sweeps/{sweep_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def finish_sweep(self, sweep_id: str, timeout: float = 120) -> dict:
        """Poll (gently) until every trial of the sweep has ended; returns the sweep."""
        def ended():
            sweep = self.sweep(sweep_id)
            return sweep if sweep["status"] != "running" else None
        return wait_for(ended, timeout, f"sweep {sweep_id} to end", interval=0.2)
