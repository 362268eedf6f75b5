"""Benchmark (not a test): the cost of a fair claim against the old FIFO claim, per backend.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_claims.py \\
        [--queued 2000] [--tenants 10] [--claims 200] [--repeats 5] [--postgres-url URL]

A store holds --queued jobs spread over --tenants tenants. Each round times --claims claims with
the fair statement (JobStore.claim: priority, then the tenant with the fewest running jobs, then
its oldest last claim) and as many with the FIFO statement the store used before tenants
existed (oldest queued job), interleaved; each claimed job is released again so that the queue
keeps its size. Prints median and spread of the per-claim time and the fair/FIFO ratio.
PostgreSQL runs when --postgres-url or NEEDLE_TEST_POSTGRES_URL is set.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from service.jobs import Lease  # noqa: E402
from service.jobs import postgres as pg_module  # noqa: E402
from service.jobs import sqlite as sqlite_module  # noqa: E402
from tests.pg import create_schema  # noqa: E402

SQLITE_FIFO = (
    "UPDATE jobs SET status = 'running', worker_id = ?, attempt = attempt + 1, "
    "lease_expires_at = ?, started_at = COALESCE(started_at, ?), claimed_at = ? "
    "WHERE seq = (SELECT seq FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1) "
    f"AND status = 'queued' RETURNING {sqlite_module.JOB_COLUMNS}")
POSTGRES_FIFO = f"""
    UPDATE jobs SET status = 'running', worker_id = %(worker)s, attempt = attempt + 1,
           lease_expires_at = %(until)s, started_at = COALESCE(started_at, %(now)s),
           claimed_at = %(now)s
    WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq
                FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING {pg_module.JOB_COLUMNS}"""


def fifo_claim(store, worker: str) -> str:
    """The pre-tenancy claim statement on this store; returns the claimed job id."""
    now = time.time()
    if isinstance(store, sqlite_module.SQLiteStore):
        with store._write() as conn:
            return conn.execute(SQLITE_FIFO, (worker, now + 60, now, now)).fetchone()[0]
    return store._run(lambda conn: conn.execute(
        POSTGRES_FIFO, {"worker": worker, "until": now + 60, "now": now}).fetchone()[0])


def timed_claims(store, how: str, n: int) -> list[float]:
    """Seconds per claim for n claims; every claimed job goes back to the queue afterwards."""
    times, leases = [], []
    for i in range(n):
        start = time.perf_counter()
        if how == "fair":
            job = store.claim("bench", 60)
            job_id, attempt = job.id, job.attempt
        else:
            job_id = fifo_claim(store, "bench")
            attempt = store.get_job(job_id, with_spec=False).attempt
        times.append(time.perf_counter() - start)
        leases.append(Lease(job_id, "bench", attempt))
    for lease in leases:
        store.release(lease)
    return times


def bench(name: str, store, args) -> None:
    store.migrate()
    spec = {"model": {"type": "sequential", "layers": []}}
    for i in range(args.queued):
        store.create_job(dict(spec, n=i), param_count=1, epochs=1, steps=1,
                         tenant=f"t{i % args.tenants}")
    rounds = {"fair": [], "fifo": []}
    for _ in range(args.repeats):
        for how in ("fair", "fifo"):
            rounds[how].append(statistics.median(timed_claims(store, how, args.claims)))
    fair, fifo = statistics.median(rounds["fair"]), statistics.median(rounds["fifo"])
    print(f"{name:<10} {args.queued:>6} queued / {args.tenants} tenants   "
          f"fair {fair * 1e3:6.2f} ms ({min(rounds['fair']) * 1e3:.2f}-{max(rounds['fair']) * 1e3:.2f})   "
          f"FIFO {fifo * 1e3:6.2f} ms ({min(rounds['fifo']) * 1e3:.2f}-{max(rounds['fifo']) * 1e3:.2f})   "
          f"fair/FIFO {fair / fifo:.2f}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=2000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres-url", default=os.environ.get("NEEDLE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}; per-claim medians over "
          f"{args.repeats} interleaved rounds of {args.claims} claims (min-max of round medians)")
    with tempfile.TemporaryDirectory() as tmp:
        bench("SQLite", sqlite_module.SQLiteStore(Path(tmp) / "jobs.db"), args)
    if args.postgres_url:
        url, drop = create_schema(args.postgres_url, prefix="bench")
        try:
            bench("PostgreSQL", pg_module.PostgresStore(url), args)
        finally:
            drop()
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
