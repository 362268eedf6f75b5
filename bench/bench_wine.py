"""Benchmark (not a test): a small-data job through the service vs the same training in-process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_wine.py --repeats 7

The wine-like job of issue 10: a synthetic 178 x 13, 3-class data set (class-dependent Gaussian
clusters with wine-like feature scales, no download), uploaded once, standardized by the job's
`data.preprocess`, MLPResNet(13, 32, 1 block), Adam, 200 epochs of 4 steps (batch 45). With a
checkpoint after every epoch this took 3x the in-process time; time-based checkpoints (default
every 10 s of training) make such jobs pay nothing. Rounds alternate the two sides:
  service    - the worker's started_at -> finished_at (fetch the dataset, standardize, build,
               train with per-epoch metrics, store the parameters); one local worker, nice 10.
  in-process - a fresh python process doing the same with plain needle at the same nice level,
               timed from after its imports (load the npz, standardize, build, train).
Target: median service / median in-process <= 1.2.
"""
import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from bench/: the harnesses live next to it
sys.path.insert(0, str(ROOT / "bench"))
from bench_service import WORKER_NICE, seconds, server, submit, wait_status, workers_cpu_seconds  # noqa: E402
from bench_sweeps import blas_kernel  # noqa: E402

TERMINAL = {"succeeded", "failed", "cancelled"}
# mean and spread of the 13 UCI wine features (alcohol, malic acid, ..., proline), roughly
FEATURE_MEANS = np.array([13.0, 2.3, 2.4, 19.5, 100.0, 2.3, 2.0, 0.36, 1.6, 5.1, 0.96, 2.6, 750.0])
FEATURE_STDS = np.array([0.8, 1.1, 0.3, 3.3, 14.0, 0.6, 1.0, 0.12, 0.6, 2.3, 0.23, 0.7, 315.0])
CLASS_SIZES = (59, 71, 48)  # 178 rows, as the UCI set


def wine_like(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x (178, 13) float64 with wine-like scales, y (178,) three classes whose means differ."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 13)) * 1.2  # class centres in standard units
    x = np.concatenate([centres[k] + rng.standard_normal((n, 13)) for k, n in enumerate(CLASS_SIZES)])
    y = np.repeat(np.arange(3), CLASS_SIZES)
    order = rng.permutation(len(y))
    return (x * FEATURE_STDS + FEATURE_MEANS)[order].round(3), y[order]


def job_spec(dataset_id: str) -> dict:
    """The service job: the uploaded data standardized, 200 epochs x 4 steps."""
    return {"model": {"type": "mlp_resnet", "in_features": 13, "hidden_dim": 32, "num_blocks": 1,
                      "num_classes": 3, "drop_prob": 0.1},
            "optimizer": {"type": "adam", "lr": 0.01},
            "data": {"type": "dataset", "id": dataset_id, "preprocess": {"type": "standardize"}},
            "training": {"epochs": 200, "batch_size": 45, "seed": 0}}


BASELINE_CODE = """
import io, json, sys, time
import numpy as np
import needle as ndl
spec, path = json.loads(sys.argv[1]), sys.argv[2]
m, o, t = spec["model"], spec["optimizer"], spec["training"]
start, cpu_start = time.perf_counter(), time.process_time()  # a worker starts here, imports done
with np.load(path, allow_pickle=False) as npz:
    x, y = npz["x"].astype(np.float64), npz["y"].astype(np.int64)
x = ((x - x.mean(axis=0)) / x.std(axis=0)).astype(np.float32)
np.random.seed(t["seed"])
model = ndl.models.MLPResNet(m["in_features"], m["hidden_dim"], m["num_blocks"], m["num_classes"],
                             norm=ndl.nn.BatchNorm1d, drop_prob=m["drop_prob"])
opt = ndl.optim.Adam(model.parameters(), lr=o["lr"])
loss_fn = ndl.nn.SoftmaxLoss()
model.train()
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
print(json.dumps({"run_s": end - start, "cpu_s": cpu_end - cpu_start}))
"""


def in_process(spec: dict, npz_path: Path, nice: int) -> dict:
    """{"run_s", "cpu_s"} of the same training in a fresh plain-needle process (one BLAS thread)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", BASELINE_CODE, json.dumps(spec), str(npz_path)], env=env,
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         preexec_fn=(lambda: os.nice(nice)) if nice else None)
    return json.loads(out.stdout.strip().splitlines()[-1])


def through_service(client, spec: dict) -> tuple[float, float, dict]:
    """(worker started -> finished seconds, the worker process's CPU seconds meanwhile (plus its
    idle polls while the client waits), the finished job)."""
    cpu_before = workers_cpu_seconds(client.server_pid)
    job = wait_status(client, submit(client, spec)["id"], TERMINAL, timeout=300, interval=0.1)
    cpu = workers_cpu_seconds(client.server_pid) - cpu_before
    if job["status"] != "succeeded":
        raise RuntimeError(f"wine job {job['status']}: {job['error']}")
    return seconds(job, "started_at", "finished_at"), cpu, job


def main() -> None:
    """Alternate the two sides `repeats` times; print each round, medians, spread and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--nice", type=int, default=WORKER_NICE)
    args = parser.parse_args()
    print(f"bench_wine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, BLAS {blas_kernel()}",
          flush=True)
    x, y = wine_like()
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    service_s, local_s, service_cpu, local_cpu = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-wine-") as tmp, \
            server(workers=1, env={"NEEDLE_WORKER_NICE": str(args.nice)}) as client:
        npz_path = Path(tmp) / "wine.npz"
        npz_path.write_bytes(buffer.getvalue())
        upload = client.post("/v1/datasets", files={"file": ("wine.npz", buffer.getvalue())})
        upload.raise_for_status()
        spec = job_spec(upload.json()["id"])
        through_service(client, spec)  # warm-up: the worker has imported needle, the data is cached
        for round_ in range(args.repeats):
            local = in_process(spec, npz_path, args.nice)
            local_s.append(local["run_s"])
            local_cpu.append(local["cpu_s"])
            worker, cpu, job = through_service(client, spec)
            service_s.append(worker)
            service_cpu.append(cpu)
            print(f"  round {round_ + 1}: in-process {local_s[-1]:.3f} s (CPU {local_cpu[-1]:.3f} s) | "
                  f"service worker {worker:.3f} s (CPU {cpu:.3f} s; training loop "
                  f"{job['result']['runtime_s']:.3f} s, train_error {job['result']['train_error']:.3f})",
                  flush=True)
    ratio = statistics.median(service_s) / statistics.median(local_s)
    print(f"in-process median {statistics.median(local_s):.3f} s (spread {min(local_s):.3f}-{max(local_s):.3f}); "
          f"service median {statistics.median(service_s):.3f} s (spread {min(service_s):.3f}-"
          f"{max(service_s):.3f})")
    print(f"service / in-process: median/median {ratio:.3f}, best/best {min(service_s) / min(local_s):.3f} "
          f"(target <= 1.2); load average now {os.getloadavg()[0]:.2f}")
    print(f"CPU seconds (less sensitive to other load), median service / in-process: "
          f"{statistics.median(service_cpu) / statistics.median(local_cpu):.3f}")


if __name__ == "__main__":
    main()
