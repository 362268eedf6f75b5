"""Benchmark (not a test): what open event streams cost, with 2 workers training.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_streams.py \
        [--streams 200] [--repeats 3] [--postgres-url postgresql://...] [--backends sqlite,postgresql]

Per backend (SQLite; PostgreSQL with --postgres-url or NEEDLE_TEST_POSTGRES_URL) it starts a real
service (`serve --workers 0` and 2 `needle-service worker` processes at their deployed nice 10,
bench_workers.service) and two long training jobs, then measures, in interleaved rounds:

(a) GET /v1/jobs/{id} latency (p50/p99 of sequential polls of a training job) without streams,
    with --streams idle streams (on a queued job) and with --streams streams on the two training
    jobs (half on each, every point flowing to all), held by a separate client process;
(b) the delay from a metric point's commit to its arrival at a stream client: the bench claims a
    probe job itself (both workers are busy), writes a point through the store every 50 ms and
    times its arrival on a stream, alone and with --streams streams open on the probe job;
(c) the API process's CPU time with --streams idle streams (on a queued job nobody trains) and
    with --streams streams on the training jobs, against none, as a share of one core.

The load is the same on any host: the workers' speed is measured first (two jobs trained side by
side for a few seconds), then the training jobs are sized to outlast the run and to make
FLOW_POINTS_PER_SECOND step points a second each (a fast host merges more steps into a point).
"""
import argparse
import asyncio
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: reuse the test and benchmark helpers
from api_tests.server import child_stats, wait_for  # noqa: E402
from api_tests.sse import events, open_stream  # noqa: E402
from bench.bench_workers import JOB_SPEC, service  # noqa: E402
from bench.stolen import StealMeter  # noqa: E402
from tests.pg import create_schema  # noqa: E402

STEPS_PER_EPOCH = 1000   # JOB_SPEC: 8,000 samples in batches of 8
FLOW_POINTS_PER_SECOND = 1000  # step points a second from each training job, on any host
ROUND_SECONDS = 200      # a round takes ~130 s; the training jobs are sized to outlast the run
CALIBRATION_SECONDS = 5.0
CALIBRATION_SPEC = {**JOB_SPEC, "training": {**JOB_SPEC["training"], "epochs": 1000}}
IDLE_SPEC = {**JOB_SPEC, "training": {**JOB_SPEC["training"], "epochs": 1}}
POLLS = 2000  # GETs per latency sample (a p99 of 600 was their 6th-worst: one hiccup moved it)
POLL_GAP_SECONDS = 0.005
PROBE_POINTS = 120       # metric points per delay sample
PROBE_GAP_SECONDS = 0.05
CPU_WINDOW_SECONDS = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CONNECTION_HEADROOM = 50  # connections beyond the held streams: the polling and probe clients


# ---- the stream-holding client process (`--hold`) ----
async def hold_streams(base_url: str, job_ids: list[str], count: int, ready_file: Path) -> None:
    """Open `count` streams spread over job_ids, drain them until SIGTERM; touch ready_file once
    every stream has its first event. Raw sockets that discard what they read: a Python HTTP
    parser reading 200 busy streams would take a core from the service it measures."""
    host, port = base_url.removeprefix("http://").split(":")
    started = [asyncio.Event() for _ in range(count)]
    tasks = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        for first, job_id in enumerate(job_ids):
            # as the dashboard does: the display series, then the job's streams from its last
            # point (at once: a long curve's series takes seconds, and streams opened from an
            # older cursor would replay what came meanwhile)
            after = (await client.get(f"/v1/jobs/{job_id}/metrics/series",
                                      params={"points": 2000})).json()["last_seq"]
            tasks += [asyncio.create_task(_drain(host, int(port), job_id, after, started[i]))
                      for i in range(first, count, len(job_ids))]
    all_started = asyncio.ensure_future(asyncio.gather(*(event.wait() for event in started)))
    # a stream that fails to open (a 503, say) ends the holder instead of hanging it
    await asyncio.wait([all_started, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done():
            task.result()  # raises what went wrong; a drained stream ending early is wrong too
            raise RuntimeError(f"a stream ended before all {count} streams opened")
    ready_file.write_text("ready")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for task in tasks:
        task.cancel()


async def _drain(host: str, port: int, job_id: str, after: int, started: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /v1/jobs/{job_id}/events?after={after} HTTP/1.1\r\nHost: {host}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    while await reader.read(1 << 16):
        started.set()
    writer.close()


class StreamHolder:
    """The `--hold` child process with its streams open (a context manager)."""

    def __init__(self, base_url: str, job_ids: list[str], count: int):
        self.args = [sys.executable, __file__, "--hold", str(count), "--base-url", base_url,
                     "--job-ids", ",".join(job_ids)]
        self.count = count

    def __enter__(self):
        if self.count == 0:
            self.process = None
            return self
        self.ready = Path(tempfile.mktemp(prefix="needle-streams-"))
        self.process = subprocess.Popen([*self.args, "--ready-file", str(self.ready)])
        try:
            wait_for(lambda: self.ready.exists() or self.process.poll() is not None, 300,
                     f"{self.count} streams to open", interval=0.1)
            assert self.process.poll() is None, "the stream holder exited"
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
            self.ready.unlink(missing_ok=True)


# ---- measurements ----
def poll_latencies(client: httpx.Client, job_id: str) -> list[float]:
    """Milliseconds of POLLS sequential GET /v1/jobs/{id}."""
    out = []
    for _ in range(POLLS):
        start = time.perf_counter()
        client.get(f"/v1/jobs/{job_id}").raise_for_status()
        out.append(1000 * (time.perf_counter() - start))
        time.sleep(POLL_GAP_SECONDS)
    return out


def probe_delays(client: httpx.Client, store, lease, first_step: int) -> list[float]:
    """Write PROBE_POINTS points through the store; milliseconds from each commit to its arrival."""
    committed: dict[int, float] = {}
    arrived: dict[int, float] = {}
    done = threading.Event()

    def read() -> None:
        with open_stream(client, lease.job_id, after=_last_seq(client, lease.job_id)) as response:
            for event in events(response):
                if event.event == "metric":
                    arrived[event.json()["step"]] = time.time()
                    if len(arrived) >= PROBE_POINTS:
                        break
        done.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)  # the reader is connected
    for step in range(first_step, first_step + PROBE_POINTS):
        assert store.add_metrics(lease, [("step", 0, step, {"loss": 1.0})])
        committed[step] = time.time()
        time.sleep(PROBE_GAP_SECONDS)
    done.wait(30)
    return [1000 * (arrived[s] - committed[s]) for s in committed if s in arrived]


def _last_seq(client: httpx.Client, job_id: str) -> int:
    return client.get(f"/v1/jobs/{job_id}/metrics/series", params={"points": 10}).json()["last_seq"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def api_cpu_share(pid: int) -> float:
    """The API's CPU over CPU_WINDOW_SECONDS of wall time, as a fraction of one core."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(CPU_WINDOW_SECONDS)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def api_pid() -> int:
    """The `serve` child of this process."""
    for pid in child_stats(os.getpid()):
        if b"serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise RuntimeError("no API process found")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ---- one backend ----
def open_store(url: str):
    from service.jobs.backends import open_store as open_configured
    from service.settings import Settings
    return open_configured(Settings(database_url=url, workers=0))


def start_jobs(client: httpx.Client, spec: dict, count: int) -> list[str]:
    """Submit `count` jobs of `spec` and wait until all of them train."""
    ids = []
    for _ in range(count):
        response = client.post("/v1/jobs", json=spec)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for job_id in ids:
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "running", 60,
                 "a training job to start", interval=0.1)
    return ids


def last_step(client: httpx.Client, job_id: str) -> int:
    """The step of the job's newest metric point."""
    page = client.get(f"/v1/jobs/{job_id}/metrics", params={"after": _last_seq(client, job_id) - 1})
    return page.json()["points"][-1]["step"]


def steps_per_second(client: httpx.Client) -> float:
    """The workers' training speed on this host: two jobs side by side, steps a second each."""
    ids = start_jobs(client, CALIBRATION_SPEC, 2)
    time.sleep(1.0)  # past the first steps' warm-up
    first, start = [last_step(client, job_id) for job_id in ids], time.monotonic()
    time.sleep(CALIBRATION_SECONDS)
    steps = [last_step(client, job_id) - f for job_id, f in zip(ids, first)]
    elapsed = time.monotonic() - start
    for job_id in ids:
        client.post(f"/v1/jobs/{job_id}/cancel")
    for job_id in ids:
        wait_for(lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled", 60,
                 "a calibration job to stop", interval=0.1)
    return statistics.mean(steps) / elapsed


def training_spec(rate: float, seconds: float) -> dict:
    """JOB_SPEC trained for about `seconds` at `rate` steps a second."""
    epochs = max(1, math.ceil(rate * seconds / STEPS_PER_EPOCH))
    return {**JOB_SPEC, "training": {**JOB_SPEC["training"], "epochs": epochs}}


def bench_backend(name: str, url: str, data_dir: Path, streams: int, repeats: int) -> dict:
    from service.jobs import Lease
    # workers at their deployed priority (nice 10, below the API): latency is the API's figure
    # room for the streams beyond uvicorn's default connection limit (the limit answers 503);
    # a step-point budget that makes a job lasting `seconds` record FLOW_POINTS_PER_SECOND
    # points a second (steps_per_point: planned steps / budget steps go into each point), and
    # room for that many steps on a fast host
    seconds = repeats * ROUND_SECONDS + 120
    extra_env = {"NEEDLE_LIMIT_CONCURRENCY": str(streams + CONNECTION_HEADROOM),
                 "NEEDLE_MAX_STEP_POINTS": str(int(FLOW_POINTS_PER_SECOND * seconds)),
                 "NEEDLE_MAX_JOB_STEPS": str(10**9), "NEEDLE_MAX_EPOCHS": str(10**6)}
    with service(url, data_dir, 2, worker_nice=10, extra_env=extra_env) as client:
        base = str(client.base_url)
        rate = steps_per_second(client)
        training = start_jobs(client, training_spec(rate, seconds), 2)
        print(f"  {name}: the workers train {rate:,.0f} steps/s a job; training jobs of "
              f"{training_spec(rate, seconds)['training']['epochs']:,} epochs (~{seconds:.0f} s)",
              flush=True)
        probe_id = client.post("/v1/jobs", json=IDLE_SPEC).json()["id"]
        store = open_store(url)
        claimed = store.claim("bench-probe", 600)  # both workers are busy: the probe is ours
        assert claimed is not None and claimed.id == probe_id, "a worker took the probe job"
        lease = Lease(claimed.id, "bench-probe", claimed.attempt)
        idle_id = client.post("/v1/jobs", json=IDLE_SPEC).json()["id"]  # stays queued
        pid = api_pid()
        results = {key: [] for key in ("poll_without", "poll_idle", "poll_active", "delay_alone",
                                       "delay_crowd", "cpu_without", "cpu_idle", "cpu_active")}
        step = 1
        for _ in range(repeats):
            results["poll_without"].append(poll_latencies(client, training[0]))
            with StreamHolder(base, [idle_id], streams):
                results["poll_idle"].append(poll_latencies(client, training[0]))
            with StreamHolder(base, training, streams):
                results["poll_active"].append(poll_latencies(client, training[0]))
            results["delay_alone"].append(probe_delays(client, store, lease, step))
            step += PROBE_POINTS
            with StreamHolder(base, [probe_id], streams):
                results["delay_crowd"].append(probe_delays(client, store, lease, step))
            step += PROBE_POINTS
            results["cpu_without"].append(api_cpu_share(pid))
            with StreamHolder(base, [idle_id], streams):
                results["cpu_idle"].append(api_cpu_share(pid))
            with StreamHolder(base, training, streams):
                results["cpu_active"].append(api_cpu_share(pid))
            store.heartbeat(lease, 600)
            still = [client.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in training]
            assert still == ["running", "running"], f"the training jobs ended mid-run: {still}"
        for job_id in (*training, idle_id):
            client.post(f"/v1/jobs/{job_id}/cancel")
        store.close()
    return {"backend": name, **results}


def report(row: dict, streams: int) -> None:
    def p(key, q):
        per_round = [pct(sample, q) for sample in row[key]]
        return statistics.median(per_round), per_round
    print(f"\n{row['backend']}")
    for q, label in ((0.5, "p50"), (0.99, "p99")):
        base, b_rounds = p("poll_without", q)
        line = f"  (a) GET /v1/jobs/{{id}} {label}: {base:6.2f} ms without streams"
        for key, what in (("poll_idle", "idle"), ("poll_active", "on the training jobs")):
            value, _ = p(key, q)
            line += f"; {value:6.2f} ms (+{value - base:.2f}) with {streams} {what}"
        print(line + f"   rounds without: {_fmt(b_rounds)}")
    for key, label in (("delay_alone", "1 stream"), ("delay_crowd", f"{streams + 1} streams")):
        p50, _ = p(key, 0.5)
        p99, r99 = p(key, 0.99)
        print(f"  (b) write -> arrival, {label:>11}: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms   "
              f"rounds p99: {_fmt(r99)}")
    base = statistics.median(row["cpu_without"])
    for key, what in (("cpu_idle", "idle streams"), ("cpu_active", "streams on the training jobs")):
        value = statistics.median(row[key])
        print(f"  (c) API CPU with {streams} {what}: {100 * value:5.1f} % of a core, "
              f"+{100 * (value - base):.1f} % over {100 * base:.1f} % without   rounds: "
              f"{_fmt([100 * v for v in row[key]])}")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def blas_report() -> str:
    try:
        import numpy  # noqa: F401 - loads the BLAS threadpoolctl inspects
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                     f"{i.get('num_threads')} threads" for i in threadpool_info()) or "no BLAS found"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres-url", default=os.environ.get("NEEDLE_TEST_POSTGRES_URL"))
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (the latter needs a URL)")
    parser.add_argument("--hold", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--job-ids", help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold is not None:
        asyncio.run(hold_streams(args.base_url, args.job_ids.split(","), args.hold, args.ready_file))
        return
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}; BLAS: {blas_report()}")
    wanted = {name.strip().lower() for name in args.backends.split(",")}
    names = [name for name in ("SQLite", "PostgreSQL") if name.lower() in wanted]
    for name in [n for n in names if n == "SQLite" or args.postgres_url]:
        with tempfile.TemporaryDirectory(prefix="needle-bench-") as tmp:
            drop = lambda: None  # noqa: E731
            if name == "PostgreSQL":
                url, drop = create_schema(args.postgres_url, "bench")
            else:
                url = f"sqlite:///{Path(tmp) / 'jobs.db'}"
            try:
                steal = StealMeter()
                report(bench_backend(name, url, Path(tmp), args.streams, args.repeats), args.streams)
                print(f"  {steal.report()}")
            finally:
                drop()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
