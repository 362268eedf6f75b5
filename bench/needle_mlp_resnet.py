"""Benchmark: one MLPResNet epoch on 60,000 MNIST-shaped samples, needle vs PyTorch CPU in the same run.

    .venv/bin/python bench/needle_mlp_resnet.py [--samples 60000] [--repeats 5] [--blas-threads 1]

Model and loop are identical in both frameworks: MLPResNet(784, 100, 3 blocks, BatchNorm1d, dropout 0.1,
10 classes), batch 100, Adam(lr=1e-3, weight_decay=1e-3), one shuffled epoch of random float32 data.
Prints samples/s, resident memory across the epoch (it must stay flat) and needle_time / torch_time
(target <= 0.75). Peers: PyTorch with its default thread count and default Adam (the ratio's
denominator), PyTorch limited to one thread, and both again with `Adam(fused=True)`: PyTorch's
default CPU Adam loops over parameters in Python, its fused kernel is much faster, so the fused lines
show needle against PyTorch's best configuration too.

Why repeats are interleaved and the best epoch counts: the machine (2 cores) is shared with other
jobs, so any single epoch may be slowed by them. Each round runs one epoch of every contestant, in
an order that rotates between rounds, so a burst of outside load hits all of them alike; the best
epoch of each is its speed on an unloaded moment, and the median shows how they fare under load.

BLAS threads for needle: OpenBLAS reads OPENBLAS_NUM_THREADS when numpy is imported, so
--blas-threads (default 1, as in the service's workers) is applied before that import. Measured
here (bench/RESULTS-needle.md): 2 threads speed up only the 784-wide first layer a little on an idle
machine, and on a loaded one their spinning threads make epochs several times slower; 1 is faster
and far steadier at batch 100. PyTorch keeps its own default thread pool.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from bench/: the PyTorch twin is in tests/


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (best and median count)")
    parser.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads for needle")
    parser.add_argument("--no-torch", action="store_true", help="needle only (no ratio)")
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
# Must happen before numpy is imported (OpenBLAS sizes its thread pool once, at load time).
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads if ARGS else 1)

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402

BATCH, HIDDEN, BLOCKS, CLASSES, FEATURES = 100, 100, 3, 10, 784


def rss_mb() -> float:
    """Current resident set size in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def needle_epoch(x, y, seed):
    """One training epoch in needle; returns (seconds, rss samples)."""
    np.random.seed(seed)
    model = ndl.models.MLPResNet(FEATURES, HIDDEN, BLOCKS, CLASSES, norm=ndl.nn.BatchNorm1d, drop_prob=0.1)
    opt = ndl.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(x, y), batch_size=BATCH, shuffle=True)
    loss_fn = ndl.nn.SoftmaxLoss()
    model.train()
    rss = []
    start = time.perf_counter()
    for i, (xb, yb) in enumerate(loader):
        opt.reset_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        if i % 100 == 0:
            rss.append(rss_mb())
    return time.perf_counter() - start, rss


def torch_epoch(x, y, seed, threads, fused=None):
    """The identical model and loop in PyTorch CPU with `threads` intra-op threads; (seconds, rss)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    from service.client.torch_twin import mlp_resnet
    model = mlp_resnet(FEATURES, HIDDEN, BLOCKS, CLASSES, drop_prob=0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3, fused=fused)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    model.train()
    rss = []
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    order = torch.from_numpy(rng.permutation(len(x)))
    for i, lo in enumerate(range(0, len(x), BATCH)):
        idx = order[lo:lo + BATCH]
        opt.zero_grad()
        loss = loss_fn(model(xt[idx]), yt[idx])
        loss.backward()
        opt.step()
        if i % 100 == 0:
            rss.append(rss_mb())
    return time.perf_counter() - start, rss


def run_rounds(contestants, x, y, repeats):
    """Run every contestant once per round, rotating the order; returns {name: [(seconds, rss), ...]}."""
    runs = {name: [] for name in contestants}
    names = list(contestants)
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            runs[name].append(contestants[name](x, y, round_index))
    return runs


def report(name, runs, n):
    """Print best and median epoch and the memory trace of the last one; return (best, median)."""
    times = [t for t, _ in runs]
    best, median = min(times), statistics.median(times)
    rss = runs[-1][1]
    print(f"{name:21s} best {best:6.2f} s ({n / best:7,.0f} samples/s)  median {median:6.2f} s  "
          f"rss start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, peak {max(rss):.0f} MiB")
    return best, median


def main(args):
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, FEATURES), dtype=np.float32)          # (N, 784) in [0, 1)
    y = rng.integers(0, CLASSES, size=args.samples).astype(np.uint8)    # (N,)
    contestants = {"needle": needle_epoch}
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not installed: no ratio (pip install torch==2.13.0)")
    if torch is not None and not args.no_torch:
        default_threads = torch.get_num_threads()
        contestants["pytorch"] = lambda x, y, s: torch_epoch(x, y, s, default_threads)
        contestants["pytorch-1thread"] = lambda x, y, s: torch_epoch(x, y, s, 1)
        contestants["pytorch-fused"] = lambda x, y, s: torch_epoch(x, y, s, default_threads, fused=True)
        contestants["pytorch-fused-1thread"] = lambda x, y, s: torch_epoch(x, y, s, 1, fused=True)
    print(f"{args.samples} samples, batch {BATCH}, {args.repeats} interleaved rounds; "
          f"needle OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
          + (f"; torch {torch.__version__}, default {default_threads} threads" if len(contestants) > 1 else "")
          + f"; load average {os.getloadavg()[0]:.1f}")
    runs = run_rounds(contestants, x, y, args.repeats)
    results = {name: report(name, runs[name], args.samples) for name in contestants}
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if "pytorch" not in results:
        return
    (needle_best, needle_median) = results["needle"]
    for peer in ("pytorch", "pytorch-1thread", "pytorch-fused", "pytorch-fused-1thread"):
        peer_best, peer_median = results[peer]
        print(f"ratio needle_time / {peer}_time: best {needle_best / peer_best:.3f}, "
              f"median {needle_median / peer_median:.3f}" + ("  (target <= 0.75)" if peer == "pytorch" else ""))


if __name__ == "__main__":
    sys.exit(main(ARGS))
