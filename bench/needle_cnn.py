"""Benchmark: a small CNN training step, needle vs PyTorch CPU in the same run, and peak memory.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/needle_cnn.py [--rounds 7]

The model (the service spec below, built by the service's builder for needle and by the PyTorch
twin for torch, starting from the same weights): two conv3x3-BatchNorm2d-ReLU-MaxPool2d(2) stages
with 16 and 32 channels on 1x28x28 inputs, then flatten and linear to 10 classes; batch 64, Adam
(lr 1e-3), random float32 images. One timed unit is `--steps` training steps (zero grads, forward,
cross-entropy, backward, optimizer step). Rounds interleave the contestants in a rotating order so
outside load on this shared machine hits all of them alike; the median over rounds is the figure,
and min-max shows the spread. Peers: PyTorch with its default intra-op threads (the ratio's
denominator) and with one thread. needle runs with its default thread count (needle.parallel: the
CPUs it may use, as PyTorch's default) and one BLAS thread, and, as a second contestant, with one
thread (as each of the service's workers does).

Peak memory: each framework trains `--steps` steps in a fresh subprocess after resetting the
kernel's peak-RSS mark (/proc/self/clear_refs), so the figure is the peak resident memory the
training steps add on top of the loaded model and data, measured the same way for both.

The OpenBLAS kernel is whatever numpy's OpenBLAS picks on this CPU: run with OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE unset (this build machine's environment forces an older kernel); threadpoolctl
reports the kernel in use.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median counts)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed unit")
    parser.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads for needle")
    parser.add_argument("--threads", type=int, help="needle's threads (default: needle's own default)")
    parser.add_argument("--memory-of", choices=["needle", "pytorch"], help=argparse.SUPPRESS)
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
# OpenBLAS sizes its thread pool when numpy is imported, so this must come first.
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads if ARGS else 1)
if ARGS and ARGS.threads:
    os.environ["NEEDLE_NUM_THREADS"] = str(ARGS.threads)

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
from bench.stolen import StealMeter  # noqa: E402
from service.training.builders import build_model  # noqa: E402
from service.training.params import to_torch_layout  # noqa: E402

BATCH, CLASSES, BATCHES = 64, 10, 8


def _stage(c_in: int, c_out: int) -> list[dict]:
    return [{"type": "conv2d", "in_channels": c_in, "out_channels": c_out, "kernel_size": 3,
             "stride": 1, "bias": True},
            {"type": "batchnorm2d", "dim": c_out, "eps": 1e-5, "momentum": 0.1},
            {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 2, "stride": None}]


MODEL_SPEC = {"type": "sequential", "input_shape": [1, 28, 28], "layers": [
    *_stage(1, 16), *_stage(16, 32), {"type": "flatten"},
    {"type": "linear", "in_features": 32 * 7 * 7, "out_features": CLASSES, "bias": True}]}


def make_data(seed: int = 0):
    """BATCHES batches of (64, 1, 28, 28) float32 images in [0, 1) and int64 labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((BATCHES, BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, CLASSES, (BATCHES, BATCH)).astype(np.int64)
    return x, y


class NeedleTrainer:
    """The model built from MODEL_SPEC by the service's builder; Adam(lr=1e-3); `threads`: needle's
    thread count while it trains (None: needle's default)."""

    def __init__(self, seed: int = 0, threads: int | None = None):
        self.threads = threads or ndl.parallel.get_num_threads()
        np.random.seed(seed)
        self.model = build_model(MODEL_SPEC).train()
        self.optimizer = ndl.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = ndl.nn.SoftmaxLoss()

    def step(self, x, y) -> float:
        ndl.parallel.set_num_threads(self.threads)
        self.optimizer.reset_grad()
        images = ndl.Tensor(x, requires_grad=False)  # (64, 1, 28, 28), as the service feeds it
        loss = self.loss_fn(self.model(images), ndl.Tensor(y, requires_grad=False))
        loss.backward()
        self.optimizer.step()
        return float(loss.numpy())


class TorchTrainer:
    """The PyTorch twin of MODEL_SPEC, loaded with the needle model's initial weights."""

    def __init__(self, threads: int, seed: int = 0):
        import torch

        from service.client.torch_twin import from_model_spec
        self.torch, self.threads = torch, threads
        self.model = from_model_spec(MODEL_SPEC).train()
        state = to_torch_layout(NeedleTrainer(seed).model.state_dict())
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def step(self, x, y) -> float:
        self.torch.set_num_threads(self.threads)
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(self.torch.from_numpy(x)), self.torch.from_numpy(y))
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def timed_steps(trainer, x, y, steps: int) -> float:
    """Seconds per step over `steps` steps cycling through the batches."""
    start = time.perf_counter()
    for i in range(steps):
        trainer.step(x[i % BATCHES], y[i % BATCHES])
    return (time.perf_counter() - start) / steps


def blas_kernel() -> str:
    """numpy's BLAS as threadpoolctl sees it (library, version, kernel, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} "
                     f"threads={i.get('num_threads')}" for i in threadpool_info()
                     if i.get("user_api") == "blas")


def peak_memory_mib(framework: str, steps: int) -> dict:
    """Run `steps` steps of one framework in a fresh process; its peak-RSS figures in MiB."""
    out = subprocess.run([sys.executable, __file__, "--memory-of", framework, "--steps", str(steps),
                          "--blas-threads", os.environ["OPENBLAS_NUM_THREADS"]],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def measure_own_memory(framework: str, steps: int) -> None:
    """(subprocess) Print {"baseline", "peak", "added"} MiB around `steps` training steps."""
    x, y = make_data()
    trainer = NeedleTrainer() if framework == "needle" else TorchTrainer(threads=1)
    trainer.step(x[0], y[0])  # lazily created optimizer state and caches count as baseline
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    baseline = _status_kib("VmRSS")
    timed_steps(trainer, x, y, steps)
    peak = _status_kib("VmHWM")
    print(json.dumps({"baseline": baseline / 1024, "peak": peak / 1024,
                      "added": (peak - baseline) / 1024}))


def run_rounds(contestants: dict, x, y, rounds: int, steps: int) -> dict:
    """Seconds per step of every contestant in every round, in a rotating order."""
    times = {name: [] for name in contestants}
    names = list(contestants)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed_steps(contestants[name], x, y, steps))
    return times


def main(args) -> None:
    x, y = make_data()
    contestants = {"needle": NeedleTrainer()}
    if contestants["needle"].threads > 1:
        contestants["needle-1thread"] = NeedleTrainer(threads=1)
    try:
        import torch
    except ImportError:
        print("torch not installed: needle only, no ratio (pip install torch==2.13.0)")
        torch = None
    if torch is not None:
        default_threads = torch.get_num_threads()
        contestants["pytorch"] = TorchTrainer(default_threads)
        contestants["pytorch-1thread"] = TorchTrainer(1)
        losses = {name: trainer.step(x[0], y[0]) for name, trainer in contestants.items()}
        print("first-step loss (same weights, same batch): "
              + ", ".join(f"{name} {loss:.6f}" for name, loss in losses.items()))
    print(f"numpy BLAS: {blas_kernel()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}; needle threads "
          f"{contestants['needle'].threads}")
    if torch is not None:
        print(f"torch {torch.__version__}: default {default_threads} threads")
    print(f"batch {BATCH}, {args.steps} steps per unit, {args.rounds} rounds; "
          f"load average before {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    for trainer in contestants.values():
        timed_steps(trainer, x, y, 2)  # warm-up
    steal = StealMeter()
    times = run_rounds(contestants, x, y, args.rounds, args.steps)
    print(f"load average after {os.getloadavg()[0]:.2f}; {steal.report()}")
    medians = {}
    for name, per_step in times.items():
        medians[name] = statistics.median(per_step)
        print(f"{name:16s} median {medians[name] * 1e3:7.2f} ms/step  "
              f"(min {min(per_step) * 1e3:.2f}, max {max(per_step) * 1e3:.2f})")
    pairs = [("needle", "pytorch"), ("needle", "pytorch-1thread"), ("needle-1thread", "pytorch-1thread")]
    for name, peer in pairs:
        if name in times and peer in times:
            ratios = [a / b for a, b in zip(times[name], times[peer])]
            print(f"{name} / {peer}: median of medians {medians[name] / medians[peer]:.3f}, "
                  f"median per round {statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"
                  + ("  (target <= 1.0)" if (name, peer) == pairs[0] else ""))
    for framework in ["needle"] + (["pytorch"] if torch is not None else []):
        memory = peak_memory_mib(framework, args.steps)
        print(f"peak memory {framework:8s}: +{memory['added']:.1f} MiB during training steps "
              f"(baseline {memory['baseline']:.0f} MiB, peak {memory['peak']:.0f} MiB)")


if __name__ == "__main__":
    if ARGS.memory_of:
        measure_own_memory(ARGS.memory_of, ARGS.steps)
    else:
        main(ARGS)
