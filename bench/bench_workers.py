"""Benchmark (not a test): jobs per minute with 1 and 2 worker processes, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_workers.py [--jobs 8] [--repeats 3] [--postgres-url postgresql://...]

For each backend and worker count it starts a real service (`needle-service serve --workers 0`)
plus N `needle-service worker` processes, submits a batch of small identical jobs over HTTP once
the workers are registered, and times the batch from first submission to last terminal status.
PostgreSQL runs when --postgres-url or NEEDLE_TEST_POSTGRES_URL is set (source
scripts/pg-test-server). Prints a table with jobs/min and the 1 -> 2 worker scaling factor.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from bench/: the helpers below live in the tests
from api_tests.server import TERMINAL, free_port, terminate, wait_answering, wait_for  # noqa: E402
from tests.pg import create_schema  # noqa: E402

# A job of about two seconds (4 x 1000 steps): small next to a benchmark run, big enough that the
# queue's per-job overhead (poll, claim, metrics, finish) is visible but not dominant.
JOB_SPEC = {
    "model": {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 2,
              "num_classes": 4},
    "optimizer": {"type": "adam", "lr": 0.003},
    "data": {"type": "teacher", "n_samples": 8000, "n_features": 20, "n_classes": 4, "seed": 1},
    "training": {"epochs": 4, "batch_size": 8, "seed": 0},
}


def cli(*args: str) -> list[str]:
    """The command line of the service CLI in this interpreter."""
    return [sys.executable, "-m", "service.cli", *args]


@contextmanager
def service(database_url: str, data_dir: Path, n_workers: int, worker_nice: int = 0,
            extra_env: dict[str, str] | None = None):
    """API (no local workers) plus n_workers worker processes; yields an httpx client."""
    port = free_port()
    # Workers normally run at nice 10 below the API; for throughput that would only measure
    # whoever else shares the machine, so by default they run at normal priority.
    env = {**os.environ, "NEEDLE_DATABASE_URL": database_url, "NEEDLE_DATA_DIR": str(data_dir),
           "NEEDLE_WORKER_THREADS": "1", "NEEDLE_WORKER_NICE": str(worker_nice), **(extra_env or {})}
    procs = [subprocess.Popen(cli("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "0"),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen(cli("worker"), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for _ in range(n_workers)]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_answering(client, procs[0], "/healthz", 30, "API", lambda: "(output discarded)")
            wait_for(lambda: client.get("/readyz").json()["workers_registered"] >= n_workers, 30,
                     "the workers to register", interval=0.1)
            yield client
    finally:
        terminate(procs, 15)


def run_batch(client: httpx.Client, n_jobs: int) -> tuple[float, int]:
    """Submit n_jobs identical jobs at once; (seconds until all are terminal, succeeded count)."""
    start = time.perf_counter()
    ids = []
    for _ in range(n_jobs):
        response = client.post("/v1/jobs", json=JOB_SPEC)
        response.raise_for_status()
        ids.append(response.json()["id"])
    # Poll gently (a few requests a second): the API process and the database share the two
    # cores with the workers, and a tight polling loop would eat the second worker's core.
    pending, succeeded = list(ids), 0
    while pending:
        time.sleep(0.2)
        while pending:  # jobs end roughly in submission order: stop at the first still running
            status = client.get(f"/v1/jobs/{pending[0]}").json()["status"]
            if status not in TERMINAL:
                break
            pending.pop(0)
            succeeded += status == "succeeded"
    return time.perf_counter() - start, succeeded


def measure(backend: str, n_workers: int, n_jobs: int, postgres_url: str | None) -> dict:
    """One row of the table: a fresh database, warm-up job, then the timed batch."""
    with tempfile.TemporaryDirectory(prefix="needle-bench-") as tmp:
        drop = lambda: None  # noqa: E731
        if backend == "postgresql":
            url, drop = create_schema(postgres_url, "bench")
        else:
            url = f"sqlite:///{Path(tmp) / 'jobs.db'}"
        try:
            with service(url, Path(tmp), n_workers) as client:
                run_batch(client, n_workers)  # warm-up: every worker imports numpy and trains once
                seconds, succeeded = run_batch(client, n_jobs)
        finally:
            drop()
    return {"backend": backend, "workers": n_workers, "jobs": n_jobs, "succeeded": succeeded,
            "seconds": seconds, "jobs_per_min": 60 * n_jobs / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8, help="jobs per timed batch")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of (1 worker, 2 workers); the best round of each counts")
    parser.add_argument("--postgres-url", default=os.environ.get("NEEDLE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    backends = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'backend':<11} {'workers':>7} {'jobs':>5} {'ok':>4} {'seconds':>8} {'jobs/min':>9} "
          f"{'scaling':>8}  (best of {args.repeats}; all runs: jobs/min)")
    for backend in backends:
        # Alternate 1 and 2 workers so a burst of load from elsewhere hits both alike.
        runs = {1: [], 2: []}
        for _ in range(args.repeats):
            for n_workers in (1, 2):
                runs[n_workers].append(measure(backend, n_workers, args.jobs, args.postgres_url))
        best = {n: max(rows, key=lambda row: row["jobs_per_min"]) for n, rows in runs.items()}
        for n_workers, row in best.items():
            all_runs = ", ".join(f"{r['jobs_per_min']:.1f}" for r in runs[n_workers])
            print(f"{row['backend']:<11} {row['workers']:>7} {row['jobs']:>5} {row['succeeded']:>4} "
                  f"{row['seconds']:>8.1f} {row['jobs_per_min']:>9.1f} "
                  f"{row['jobs_per_min'] / best[1]['jobs_per_min']:>7.2f}x  ({all_runs})", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f} (other processes on the machine skew the figures)")


if __name__ == "__main__":
    main()
