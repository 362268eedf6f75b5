"""Benchmark (not a test): the service's own costs, measured over real HTTP (issue #3).

    .venv/bin/python bench/bench_service.py [--only overhead,polling,claim,bigspec] [--repeats 3] [--nice 10]

Starts `needle-service serve` in a subprocess on a free port with a temp data dir and the default
worker settings (nice 10, 50 ms idle poll, one BLAS thread), then measures:
  (a) overhead  - one MLPResNet job on teacher data through the API (started_at -> finished_at,
                  submit -> finished_at and submit -> observed success with 250 ms polls) vs the
                  same data generation, model build and
                  training in a fresh plain-needle process (one BLAS thread, the workers' nice
                  level), wall and CPU seconds. Target: worker time / in-process time <= 1.05.
  (b) polling   - GET /v1/jobs/{id} p50/p99 with 2 workers busy and 50 concurrent pollers,
                  each polling every 500, 250 (judged) or 100 ms, and back to back (stress).
                  Target: p99 <= 50 ms.
  (c) claim     - submit-to-running latency with an idle worker (started_at - created_at).
                  Target: p50 <= 100 ms.
  (d) bigspec   - submit and GET of a job with a 2,000 x 784 inline spec (no target; issue #3's
                  "polling must be cheap whatever the spec size").
"""
import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from bench/: the server harness is api_tests'
from api_tests.server import child_stats, free_port, spawn_cli, terminate, wait_answering  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled"}
WORKER_NICE = 10  # the service default (settings.worker_nice); (a)'s baseline runs at the same level

# ~7 s of training here: 8,000 teacher rows, 64 features, batch 64, 16 epochs (2,000 Adam steps).
OVERHEAD_SPEC = {
    "model": {"type": "mlp_resnet", "in_features": 64, "hidden_dim": 256, "num_blocks": 3,
              "num_classes": 8, "norm": "batchnorm", "drop_prob": 0.1},
    "optimizer": {"type": "adam", "lr": 0.001, "weight_decay": 0.0001},
    "data": {"type": "teacher", "n_samples": 8000, "n_features": 64, "n_classes": 8,
             "hidden_dim": 32, "seed": 3},
    "training": {"epochs": 16, "batch_size": 64, "seed": 0},
}
TINY_SPEC = {
    "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1,
              "num_classes": 3},
    "optimizer": {"type": "adam", "lr": 0.01},
    "data": {"type": "spirals", "n_samples": 64, "seed": 0},
    "training": {"epochs": 1, "batch_size": 32, "seed": 0},
}


def long_spec(seed: int) -> dict:
    """A job that keeps a worker busy for minutes (cancelled when the measurement ends)."""
    spec = json.loads(json.dumps(OVERHEAD_SPEC))
    spec["training"].update(epochs=500, seed=seed)
    return spec


# ---------------------------------------------------------------- server harness
@contextmanager
def server(workers: int, env: dict[str, str] | None = None):
    """`needle-service serve` with `workers` local workers and default settings; yields a client."""
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        port = free_port()
        log_path = Path(tmp) / "server.log"
        full_env = {**os.environ, **(env or {})}
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full_env.get("PYTHONPATH")) if p)
        proc = spawn_cli(["serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                          str(Path(tmp) / "data"), "--workers", str(workers), "--log-level", "warning"],
                         full_env, log_path)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        client.server_pid = proc.pid  # (a) reads its workers' CPU time from /proc
        try:
            wait_answering(client, proc, "/readyz", 60, "server", lambda: log_path.read_text()[-3000:])
            yield client
        finally:
            client.close()
            terminate([proc], 30)


def submit(client: httpx.Client, spec: dict) -> dict:
    """POST a job that must be accepted."""
    response = client.post("/v1/jobs", json=spec)
    response.raise_for_status()
    return response.json()


def wait_status(client: httpx.Client, job_id: str, statuses: set[str], timeout: float,
                interval: float = 0.05) -> dict:
    """Poll until the job's status is in `statuses`."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(interval)


def seconds(job: dict, start: str, end: str) -> float:
    """Difference between two of a job's ISO timestamps."""
    return (datetime.fromisoformat(job[end]) - datetime.fromisoformat(job[start])).total_seconds()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


# ---------------------------------------------------------------- (a) overhead
BASELINE_CODE = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import needle as ndl
from service.training.generators import teacher
spec = json.loads(sys.argv[1])
m, o, d, t = spec["model"], spec["optimizer"], spec["data"], spec["training"]
setup, cpu_setup = time.perf_counter(), time.process_time()  # a worker starts here, imports done
x, y = teacher(d["n_samples"], d["n_features"], d["n_classes"], d["hidden_dim"], d["seed"])
np.random.seed(t["seed"])
model = ndl.models.MLPResNet(m["in_features"], m["hidden_dim"], m["num_blocks"], m["num_classes"],
                             norm=ndl.nn.BatchNorm1d, drop_prob=m["drop_prob"])
opt = ndl.optim.Adam(model.parameters(), lr=o["lr"], weight_decay=o["weight_decay"])
loss_fn = ndl.nn.SoftmaxLoss()
model.train()
start, cpu_start = time.perf_counter(), time.process_time()
for epoch in range(t["epochs"]):
    order = np.random.permutation(len(y))
    for i in range(0, len(y), t["batch_size"]):
        rows = order[i:i + t["batch_size"]]
        xb = ndl.Tensor(x[rows], dtype="float32", requires_grad=False)
        yb = ndl.Tensor(y[rows], dtype="int64", requires_grad=False)
        opt.reset_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        float(loss.numpy())
end, cpu_end = time.perf_counter(), time.process_time()
print(json.dumps({"run_s": end - setup, "loop_s": end - start, "total_s": end - t0,
                  "cpu_s": cpu_end - cpu_setup}))
"""


def in_process_baseline(spec: dict, nice: int) -> dict:
    """The same training in a fresh plain-needle process: one BLAS thread, the workers' nice level."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", BASELINE_CODE, json.dumps(spec)], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True,
                         preexec_fn=(lambda: os.nice(nice)) if nice else None)
    return json.loads(out.stdout.strip().splitlines()[-1])


def through_api(client: httpx.Client, spec: dict) -> dict:
    """Submit and poll every 250 ms until the job ends (50 ms polls seemed to cost the worker
    CPU on these 2 cores). Returns the worker's time (started -> finished), submit ->
    finished_at (same machine's clock, no poll delay), submit -> observed success, and the worker
    process's CPU seconds over the window."""
    cpu_before = workers_cpu_seconds(client.server_pid)
    submitted_at, t0 = time.time(), time.perf_counter()
    job = submit(client, spec)
    job = wait_status(client, job["id"], TERMINAL, timeout=300, interval=0.25)
    observed = time.perf_counter() - t0
    cpu = workers_cpu_seconds(client.server_pid) - cpu_before
    if job["status"] != "succeeded":
        raise RuntimeError(f"overhead job {job['status']}: {job['error']}")
    finished = datetime.fromisoformat(job["finished_at"]).timestamp() - submitted_at
    return {"worker_s": seconds(job, "started_at", "finished_at"), "end_to_end_s": finished,
            "observed_s": observed, "runtime_s": job["result"]["runtime_s"], "cpu_s": cpu}


def workers_cpu_seconds(server_pid: int) -> float:
    """User + system CPU seconds of the server's child processes (its workers), from /proc."""
    ticks = sum(int(fields[11]) + int(fields[12]) for fields in child_stats(server_pid).values())
    return ticks / os.sysconf("SC_CLK_TCK")  # utime + stime are in clock ticks


def bench_overhead(repeats: int, nice: int) -> None:
    """(a): alternate baseline and API runs at the same nice level; best and median count."""
    base, api = [], []
    with server(workers=1, env={"NEEDLE_WORKER_NICE": str(nice)}) as client:
        submit_and_finish(client)  # warm-up: the worker has imported needle
        for _ in range(repeats):
            base.append(in_process_baseline(OVERHEAD_SPEC, nice))
            api.append(through_api(client, OVERHEAD_SPEC))
            print(f"  in-process data+model+loop {base[-1]['run_s']:.2f} s (CPU {base[-1]['cpu_s']:.2f} s; "
                  f"loop {base[-1]['loop_s']:.2f} s, process {base[-1]['total_s']:.2f} s) | API worker "
                  f"{api[-1]['worker_s']:.2f} s (CPU "
                  f"{api[-1]['cpu_s']:.2f} s), loop {api[-1]['runtime_s']:.2f} s, submit->finished "
                  f"{api[-1]['end_to_end_s']:.2f} s, observed {api[-1]['observed_s']:.2f} s", flush=True)
    loop = [b["run_s"] for b in base]
    worker = [a["worker_s"] for a in api]
    e2e = [a["end_to_end_s"] for a in api]
    print(f"(a) overhead, nice {nice}, {repeats} alternating runs each: in-process best "
          f"{min(loop):.2f} s / median {statistics.median(loop):.2f} s; worker started->finished "
          f"best {min(worker):.2f} s / median {statistics.median(worker):.2f} s; submit->finished "
          f"best {min(e2e):.2f} s / median {statistics.median(e2e):.2f} s; submit->observed success "
          f"(250 ms polls) median {statistics.median(a['observed_s'] for a in api):.2f} s")
    print(f"    ratio worker/in-process: best/best {min(worker) / min(loop):.3f}, median/median "
          f"{statistics.median(worker) / statistics.median(loop):.3f} (target <= 1.05); "
          f"submit->finished/in-process: best/best {min(e2e) / min(loop):.3f}, median/median "
          f"{statistics.median(e2e) / statistics.median(loop):.3f}")
    cpu_ratio = statistics.median(a["cpu_s"] for a in api) / statistics.median(b["cpu_s"] for b in base)
    print(f"    CPU seconds (insensitive to other load on the machine), median worker/in-process: "
          f"{cpu_ratio:.3f}", flush=True)


# ---------------------------------------------------------------- (b) polling
def bench_polling(pollers: int, requests_each: int, max_seconds: float, intervals: list[float],
                  processes: int) -> None:
    """(b): both workers training long jobs; `pollers` client threads GET one of the two jobs, each
    every `interval` seconds (0 = back to back: a closed-loop stress test whose latency is just
    pollers / throughput of client and server sharing the 2 CPUs)."""
    with server(workers=2) as client:
        jobs = [submit(client, long_spec(seed)) for seed in (1, 2)]
        for job in jobs:
            wait_status(client, job["id"], {"running"}, timeout=60)
        for interval in intervals:
            t0 = time.perf_counter() + 5.0  # the pollers' start gate
            latencies = _poll_concurrently(client.base_url, [j["id"] for j in jobs], pollers,
                                           requests_each, max_seconds, interval, processes)
            elapsed = time.perf_counter() - t0
            busy = [client.get(f"/v1/jobs/{j['id']}").json()["status"] for j in jobs]
            ms = [s * 1000 for s in latencies]
            pace = f"each every {interval * 1000:.0f} ms" if interval else "back to back"
            print(f"(b) GET /v1/jobs/{{id}}, 2 workers training ({', '.join(busy)}), {pollers} "
                  f"pollers {pace}: n={len(ms)} ({len(ms) / elapsed:.0f} req/s) p50 "
                  f"{percentile(ms, 50):.1f} ms, p90 {percentile(ms, 90):.1f} ms, p99 "
                  f"{percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms (target p99 <= 50 ms)", flush=True)
        for job in jobs:
            client.post(f"/v1/jobs/{job['id']}/cancel")


def _poll_concurrently(base_url, job_ids: list[str], pollers: int, requests_each: int,
                       max_seconds: float, interval: float, processes: int) -> list[float]:
    """Latencies of `pollers` threads spread over `processes` client processes (one Python
    process with 50 threads would measure its own GIL convoy more than the server)."""
    start_at = time.time() + 5.0  # every client connects and warms up first, then all start together
    per_process = [list(range(i, pollers, processes)) for i in range(processes)]
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = pool.map(_poll_in_threads, [(str(base_url), job_ids, indexes, pollers, requests_each,
                                             max_seconds, interval, start_at) for indexes in per_process])
        return [latency for part in parts for latency in part]


def _poll_in_threads(args: tuple) -> list[float]:
    base_url, job_ids, indexes, pollers, requests_each, max_seconds, interval, start_at = args
    latencies: list[float] = []
    lock, ready = threading.Lock(), threading.Barrier(len(indexes))

    def poller(index: int) -> None:
        mine = []
        # creating a client (its SSL context) costs ~30 ms of GIL: all of them before the clock starts
        with httpx.Client(base_url=base_url, timeout=30) as client:
            job_id = job_ids[index % len(job_ids)]
            for _ in range(3):
                client.get(f"/v1/jobs/{job_id}")  # connect and warm up
            ready.wait()
            if time.time() > start_at:
                raise RuntimeError("client warm-up overran the start gate; raise its margin")
            time.sleep(max(0.0, start_at - time.time()))
            deadline = time.monotonic() + max_seconds
            # pollers start at spread phases, then keep a fixed schedule (no drift)
            next_at = time.monotonic() + interval * index / pollers
            for _ in range(requests_each):
                time.sleep(max(0.0, next_at - time.monotonic()))
                if time.monotonic() > deadline:
                    break
                t0 = time.perf_counter()
                response = client.get(f"/v1/jobs/{job_id}")
                mine.append(time.perf_counter() - t0)
                response.raise_for_status()
                next_at += interval
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=poller, args=(i,)) for i in indexes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


# ---------------------------------------------------------------- (c) claim latency
def bench_claim(samples: int) -> None:
    """(c): an idle worker picks up a new job; started_at - created_at and observed by polling."""
    stored, observed = [], []
    with server(workers=1) as client:
        submit_and_finish(client)  # warm-up: the worker has imported needle
        for i in range(samples):
            time.sleep(0.1 + 0.013 * i)  # land at varied phases of the worker's idle poll
            t0 = time.perf_counter()
            job = submit(client, TINY_SPEC)
            while job["status"] == "queued":
                job = client.get(f"/v1/jobs/{job['id']}").json()
            observed.append(time.perf_counter() - t0)
            job = wait_status(client, job["id"], TERMINAL, timeout=60, interval=0.02)
            stored.append(seconds(job, "created_at", "started_at"))
    s, o = [v * 1000 for v in stored], [v * 1000 for v in observed]
    print(f"(c) submit->running, idle worker, n={samples}: started_at-created_at p50 "
          f"{statistics.median(s):.1f} ms, p90 {percentile(s, 90):.1f} ms, max {max(s):.1f} ms; "
          f"observed by client p50 {statistics.median(o):.1f} ms, max {max(o):.1f} ms "
          "(target p50 <= 100 ms)")


def submit_and_finish(client: httpx.Client) -> dict:
    """One tiny job to the end."""
    return wait_status(client, submit(client, TINY_SPEC)["id"], TERMINAL, timeout=60, interval=0.02)


# ---------------------------------------------------------------- (d) big inline spec
def bench_bigspec(rounds: int) -> None:
    """(d): a 2,000 x 784 inline job (~10 MB JSON): submit once, then time job reads."""
    import numpy as np
    rng = np.random.default_rng(0)
    spec = {"model": {"type": "mlp_resnet", "in_features": 784, "hidden_dim": 32, "num_blocks": 1,
                      "num_classes": 10},
            "optimizer": {"type": "sgd", "lr": 0.01},
            "data": {"type": "inline", "x": rng.random((2000, 784)).round(4).tolist(),
                     "y": rng.integers(0, 10, 2000).tolist()},
            "training": {"epochs": 1, "batch_size": 100, "seed": 0}}
    body = json.dumps(spec).encode()
    with server(workers=0) as client:
        t0 = time.perf_counter()
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        create_s = time.perf_counter() - t0
        response.raise_for_status()
        job_id = response.json()["id"]
        get_ms, size = _timed_gets(client, f"/v1/jobs/{job_id}", rounds)
        list_ms, _ = _timed_gets(client, "/v1/jobs", rounds)
        spec_ms, spec_size = _timed_gets(client, f"/v1/jobs/{job_id}/spec", min(rounds, 3))
    print(f"(d) 2000x784 inline job ({len(body) / 1e6:.1f} MB): create {create_s * 1000:.0f} ms; "
          f"GET job p50 {statistics.median(get_ms):.1f} ms ({size} bytes); list p50 "
          f"{statistics.median(list_ms):.1f} ms; GET spec p50 {statistics.median(spec_ms):.0f} ms "
          f"({spec_size / 1e6:.1f} MB)")


def _timed_gets(client: httpx.Client, path: str, rounds: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        size = len(response.content)
    return times, size


def main() -> None:
    """Run the selected measurements and print one summary line each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="overhead,polling,claim,bigspec")
    parser.add_argument("--repeats", type=int, default=3, help="(a) runs of each side")
    parser.add_argument("--nice", type=int, default=WORKER_NICE,
                        help="(a) nice level of the worker and of the in-process baseline")
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="(b) GETs per poller")
    parser.add_argument("--max-seconds", type=float, default=30, help="(b) time bound per pace")
    parser.add_argument("--intervals", default="0.5,0.25,0.1,0",
                        help="(b) seconds between one poller's GETs, comma-separated (0 = back to back)")
    parser.add_argument("--client-processes", type=int, default=5,
                        help="(b) processes the pollers' threads are spread over")
    parser.add_argument("--samples", type=int, default=20, help="(c) jobs")
    args = parser.parse_args()
    chosen = args.only.split(",")
    print(f"bench_service: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    if "overhead" in chosen:
        bench_overhead(args.repeats, args.nice)
    if "polling" in chosen:
        bench_polling(args.pollers, args.requests, args.max_seconds,
                      [float(v) for v in args.intervals.split(",")], args.client_processes)
    if "claim" in chosen:
        bench_claim(args.samples)
    if "bigspec" in chosen:
        bench_bigspec(5)


if __name__ == "__main__":
    main()
