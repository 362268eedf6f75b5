"""Benchmark: one MLPResNet epoch on 60,000 MNIST-shaped samples, needle vs PyTorch CPU in the same run.

    .venv/bin/python bench/needle_mlp_resnet.py [--samples 60000] [--repeats 3]

Prints samples/s, resident memory across the epoch (it must stay flat) and needle_time / torch_time
(target <= 0.75). Each framework runs `--repeats` epochs; the best epoch counts, because this machine is noisy.
"""
import argparse
import os
import time

# One BLAS thread for needle, as in the service's workers: at batch 100 OpenBLAS threading costs more
# than it saves. Set before numpy is imported; PyTorch keeps its own default thread pool.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

import needle as ndl

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


def torch_epoch(x, y, seed):
    """The identical model and loop in PyTorch CPU; returns (seconds, rss samples)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    def block(dim, hidden):
        inner = nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1),
                              nn.Linear(hidden, dim), nn.BatchNorm1d(dim))
        return inner

    class Residual(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, t):
            return self.fn(t) + t

    model = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(),
                          *[nn.Sequential(Residual(block(HIDDEN, HIDDEN // 2)), nn.ReLU()) for _ in range(BLOCKS)],
                          nn.Linear(HIDDEN, CLASSES))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
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


def report(name, runs, n):
    """Print the best epoch and the memory trace of the last one; return the best time."""
    best = min(t for t, _ in runs)
    rss = runs[-1][1]
    print(f"{name:7s} best epoch {best:6.2f} s  {n / best:9,.0f} samples/s  "
          f"rss start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, peak {max(rss):.0f} MiB")
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, FEATURES), dtype=np.float32)          # (N, 784) in [0, 1)
    y = rng.integers(0, CLASSES, size=args.samples).astype(np.uint8)    # (N,)
    needle_best = report("needle", [needle_epoch(x, y, s) for s in range(args.repeats)], args.samples)
    try:
        import torch
    except ImportError:
        print("torch not installed: no ratio (pip install torch==2.13.0)")
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    torch_best = report("pytorch", [torch_epoch(x, y, s) for s in range(args.repeats)], args.samples)
    print(f"ratio needle_time / torch_time = {needle_best / torch_best:.3f}  (target <= 0.75)")


if __name__ == "__main__":
    main()
