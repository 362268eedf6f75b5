"""Scale-out over PostgreSQL with real processes: one API (`serve --workers 0`) and separate
`needle-service worker` processes that meet only in the database.

A worker killed mid-epoch (SIGKILL) or stopped (SIGTERM) hands its job to another worker, which
resumes from the checkpoint and ends with parameters and losses identical to a clean run of the
same spec through the same service; a cancel sent to the API reaches the worker process.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.pg import create_schema, postgres_url

from .server import TERMINAL, free_port, spawn_cli, terminate, wait_answering, wait_for

psycopg = pytest.importorskip("psycopg")
LEASE_SECONDS = 2.0      # short, so a SIGKILLed worker's job is re-queued quickly

# Four epochs of about half a second: time to interrupt one mid-way, short enough for a quick test;
# a checkpoint every 0.3 s of training (the server default, 10 s, would outlast the job).
SPEC = {
    "model": {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 2,
              "num_classes": 4},
    "optimizer": {"type": "adam", "lr": 0.003},
    "data": {"type": "teacher", "n_samples": 10000, "n_features": 20, "n_classes": 4, "seed": 3,
             "validation": {"type": "fraction", "fraction": 0.2}},
    "training": {"epochs": 4, "batch_size": 8, "seed": 7, "checkpoint_interval_s": 0.3},
}
STEPS_PER_EPOCH = 1000   # 8000 training rows / 8


class Cluster:
    """The API process, worker processes (replaceable), an HTTP client and a database handle."""

    def __init__(self, database_url: str, data_dir: Path):
        self.database_url = database_url
        self.log_dir = data_dir / "logs"  # files, not pipes: a full pipe would stall a process
        self.log_dir.mkdir()
        self.env = {**os.environ, "NEEDLE_DATABASE_URL": database_url, "NEEDLE_DATA_DIR": str(data_dir),
                    "NEEDLE_LEASE_SECONDS": str(LEASE_SECONDS), "NEEDLE_HEARTBEAT_SECONDS": "0.3",
                    "NEEDLE_POLL_SECONDS": "0.05", "NEEDLE_WORKER_THREADS": "1",
                    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        port = free_port()
        self.api = self._spawn("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0")
        self.workers: list[subprocess.Popen] = []
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        wait_answering(self.client, self.api, "/healthz", 30, "API", self.logs)

    def _spawn(self, *args: str) -> subprocess.Popen:
        log_path = self.log_dir / f"{args[0]}-{len(list(self.log_dir.iterdir()))}.log"
        return spawn_cli(list(args), self.env, log_path)

    def logs(self) -> str:
        """The tail of every process's output, for failure messages."""
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
                         for path in sorted(self.log_dir.iterdir()))

    def start_worker(self) -> subprocess.Popen:
        """One more `needle-service worker --database-url …` process."""
        proc = self._spawn("worker", "--database-url", self.database_url)
        self.workers.append(proc)
        return proc

    def registered_workers(self) -> int:
        return self.client.get("/readyz").json()["workers_registered"]

    def submit(self, spec: dict) -> str:
        response = self.client.post("/v1/jobs", json=spec)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def job(self, job_id: str) -> dict:
        response = self.client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, f"{response.text}\n{self.logs()}"
        return response.json()

    def wait_status(self, job_id: str, statuses: set[str], timeout: float) -> dict:
        return wait_for(lambda: (job := self.job(job_id))["status"] in statuses and job,
                         timeout, f"job {job_id} to reach {statuses}")

    def worker_process(self, job_id: str) -> subprocess.Popen:
        """The worker process that holds the job (its registration records the pid)."""
        # The API does not expose worker ids, so ask the database the API and workers share.
        with psycopg.connect(self.database_url) as conn:
            (worker_id,) = conn.execute("SELECT worker_id FROM jobs WHERE id = %s", (job_id,)).fetchone()
            row = conn.execute("SELECT info FROM workers WHERE worker_id = %s", (worker_id,)).fetchone()
        pids = {row[0].get("pid")} if row else set()
        pids |= {int(part) for part in str(worker_id).replace(":", "-").split("-") if part.isdigit()}
        matches = [proc for proc in self.workers if proc.pid in pids and proc.poll() is None]
        assert len(matches) == 1, f"cannot tell which process is worker {worker_id!r}"
        return matches[0]

    def has_checkpoint(self, job_id: str) -> bool:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute("SELECT 1 FROM checkpoints WHERE job_id = %s", (job_id,)).fetchone() is not None

    def step_losses(self, job_id: str) -> list[tuple[int, float]]:
        points = self.client.get(f"/v1/jobs/{job_id}/metrics", params={"limit": 10_000}).json()["points"]
        return [(p["step"], p["values"]["loss"]) for p in points if p["kind"] == "step"]

    def parameters(self, job_id: str) -> dict:
        response = self.client.get(f"/v1/jobs/{job_id}/parameters", params={"format": "json"})
        assert response.status_code == 200, response.text
        return response.json()

    def close(self) -> None:
        self.client.close()
        terminate([*self.workers, self.api], 10)


@pytest.fixture(scope="module")
def scale_out_url():
    """A fresh schema on the test server, dropped afterwards."""
    url, drop = create_schema(postgres_url("the scale-out tests"), "scale")
    yield url
    drop()


@pytest.fixture(scope="module")
def cluster(scale_out_url, tmp_path_factory):
    """API + two workers for the whole module; tests replace the workers they stop."""
    cluster = Cluster(scale_out_url, tmp_path_factory.mktemp("scale-out"))
    try:
        cluster.start_worker()
        cluster.start_worker()
        wait_for(lambda: cluster.registered_workers() >= 2, 30, "two workers to register")
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def clean_run(cluster):
    """The reference: SPEC trained once without interruption through the same service."""
    job_id = cluster.submit(SPEC)
    job = cluster.wait_status(job_id, TERMINAL, 60)
    assert job["status"] == "succeeded", job
    assert job["attempt"] == 1
    return {"job": job, "parameters": cluster.parameters(job_id), "losses": cluster.step_losses(job_id)}


def _interrupt_mid_epoch(cluster: Cluster, sig: int) -> tuple[str, dict]:
    """Submit SPEC, wait until its first checkpoint is stored (the worker then trains on) and
    send sig to its worker; returns the job id and the job as it was
    right after the worker process ended."""
    job_id = cluster.submit(SPEC)

    def checkpointed():
        job = cluster.job(job_id)
        assert job["status"] not in TERMINAL, f"job ended before it could be interrupted: {job}"
        return job["status"] == "running" and cluster.has_checkpoint(job_id)

    wait_for(checkpointed, 60, "the job's first checkpoint", interval=0.01)
    victim = cluster.worker_process(job_id)
    victim.send_signal(sig)
    victim.wait(20)
    after_exit = cluster.job(job_id)
    cluster.start_worker()  # what a supervisor (compose restart, the pool) would do
    return job_id, {**after_exit, "exit_code": victim.returncode}


def _finish_watching_progress(cluster: Cluster, job_id: str, timeout: float = 60) -> tuple[dict, int]:
    """Poll the job to its end; returns it and the lowest step it reported while on attempt 2.
    A job resumed from a checkpoint never reports a step below the checkpoint's."""
    lowest = None
    deadline = time.monotonic() + timeout
    while (job := cluster.job(job_id))["status"] not in TERMINAL:
        if job["status"] == "running" and job["attempt"] == 2:
            step = job["progress"]["step"]
            lowest = step if lowest is None else min(lowest, step)
        assert time.monotonic() < deadline, f"job {job_id} did not end within {timeout}s: {job}"
        time.sleep(0.02)
    return job, lowest if lowest is not None else job["progress"]["step"]


def _assert_identical_to_clean_run(cluster: Cluster, job: dict, clean: dict) -> None:
    assert job["status"] == "succeeded", job
    assert cluster.parameters(job["id"]) == clean["parameters"]
    assert cluster.step_losses(job["id"]) == clean["losses"]
    drop_runtime = lambda result: {k: v for k, v in result.items() if k != "runtime_s"}  # noqa: E731
    assert drop_runtime(job["result"]) == drop_runtime(clean["job"]["result"])


def test_sigkilled_worker_job_resumes_on_another_worker_identically(cluster, clean_run):
    job_id, at_exit = _interrupt_mid_epoch(cluster, signal.SIGKILL)
    assert at_exit["status"] == "running" and at_exit["attempt"] == 1  # until its lease runs out
    job, lowest_step = _finish_watching_progress(cluster, job_id)
    assert lowest_step >= 1, f"resumed from the checkpoint, not from scratch\n{cluster.logs()}"
    _assert_identical_to_clean_run(cluster, job, clean_run)
    assert job["attempt"] == 2


def test_sigtermed_worker_checkpoints_and_releases_its_job(cluster, clean_run):
    job_id, at_exit = _interrupt_mid_epoch(cluster, signal.SIGTERM)
    assert at_exit["exit_code"] == 0, "a graceful exit, not a crash"
    # Released before exiting: queued again (or already re-claimed), with no lease to wait out.
    assert at_exit["status"] == "queued" or at_exit["attempt"] == 2, at_exit
    released_at = at_exit["progress"]["step"]
    assert released_at >= 1
    job, lowest_step = _finish_watching_progress(cluster, job_id)
    assert lowest_step >= released_at, "resumed from the shutdown checkpoint at the current step"
    _assert_identical_to_clean_run(cluster, job, clean_run)
    assert job["attempt"] == 2


def test_cancel_through_the_api_reaches_the_worker_process(cluster):
    long_spec = {**SPEC, "training": {**SPEC["training"], "epochs": 100}}
    job_id = cluster.submit(long_spec)
    wait_for(lambda: cluster.job(job_id)["progress"]["step"] >= 3, 30, "the job to train a few steps")
    runner = cluster.worker_process(job_id)
    response = cluster.client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    job = cluster.wait_status(job_id, TERMINAL, 15)
    assert job["status"] == "cancelled"
    assert job["progress"]["step"] < 100 * STEPS_PER_EPOCH
    assert cluster.step_losses(job_id), "metrics recorded before the cancel are kept"
    assert runner.poll() is None, "the worker survives a cancel and keeps serving"


def test_workers_and_api_survive_their_database_connections_being_killed(cluster, clean_run):
    job_id = cluster.submit(SPEC)
    wait_for(lambda: cluster.job(job_id)["progress"]["step"] > 0, 30, "the job to start training")
    alive = [proc for proc in [cluster.api, *cluster.workers] if proc.poll() is None]
    names = [f"needle-service[{proc.pid}]" for proc in alive]
    with psycopg.connect(cluster.database_url, autocommit=True) as conn:
        killed = conn.execute("SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = ANY(%s)", (names,)).fetchone()[0]
    assert killed >= 2  # at least the API's and the training worker's
    job, _ = _finish_watching_progress(cluster, job_id)
    _assert_identical_to_clean_run(cluster, job, clean_run)
    assert job["attempt"] == 1, "reconnected and carried on: no hand-over was needed"
    assert sum(proc.poll() is None for proc in cluster.workers) == 2, "no worker crashed"
