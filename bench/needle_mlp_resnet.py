"""Benchmark: one MLPResNet epoch on 60,000 MNIST-shaped samples: needle vs its numpy floor and PyTorch CPU.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/needle_mlp_resnet.py [--repeats 7]

Model and loop are identical everywhere: MLPResNet(784, 100, 3 blocks, BatchNorm1d, dropout 0.1,
10 classes), batch 100, Adam(lr=1e-3, weight_decay=1e-3), one shuffled epoch of random float32 data.
Contestants: needle (the plain define-by-run loop; needle.capture replays the repeated step), needle
with capture off (`--no-capture-peer` drops it), the floor (`bench/mlp_resnet_floor.py`: the same
step hand-fused in straight numpy, same kernels, same random draws: the check below asserts that
its losses equal needle's bit for bit), PyTorch with its default thread count and default Adam,
PyTorch with one thread, and both again with `Adam(fused=True)`.

Ratios are of medians over interleaved rounds (each round runs one epoch of every contestant, in an
order that rotates between rounds, so a burst of outside load hits all of them alike), with the
spread (min..max of the per-round ratios). The machine is shared: the load average is printed.

BLAS: run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the command above), so numpy's
OpenBLAS picks the kernel it would pick on a user's machine; threadpoolctl's report is printed.
OpenBLAS reads OPENBLAS_NUM_THREADS when numpy is imported, so --blas-threads (default 1, as the
service's workers) is applied before that import. PyTorch keeps its own default thread pool.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from bench/: the PyTorch twin is in tests/
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the floor


def _parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (medians count)")
    parser.add_argument("--blas-threads", type=int, default=1, help="OpenBLAS threads for needle")
    parser.add_argument("--no-torch", action="store_true", help="needle and the floor only")
    parser.add_argument("--no-capture-peer", action="store_true", help="skip needle with capture off")
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
# Must happen before numpy is imported (OpenBLAS sizes its thread pool once, at load time).
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.blas_threads if ARGS else 1)

import numpy as np  # noqa: E402

import needle as ndl  # noqa: E402
from stolen import StealMeter  # noqa: E402  (bench/ is on the path: the floor)

BATCH, HIDDEN, BLOCKS, CLASSES, FEATURES = 100, 100, 3, 10, 784


def rss_mb() -> float:
    """Current resident set size in MiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def needle_model(seed):
    """The needle model and optimizer, initialised from np.random.seed(seed)."""
    np.random.seed(seed)
    model = ndl.models.MLPResNet(FEATURES, HIDDEN, BLOCKS, CLASSES, norm=ndl.nn.BatchNorm1d, drop_prob=0.1)
    return model, ndl.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)


def needle_epoch(x, y, seed, losses=None):
    """One training epoch in needle (the course's loop); returns (seconds, rss samples)."""
    model, opt = needle_model(seed)
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
        if losses is not None:
            losses.append(float(loss.numpy()))
        if i % 100 == 0:
            rss.append(rss_mb())
    return time.perf_counter() - start, rss


def needle_uncaptured_epoch(x, y, seed):
    """needle with capture/replay off: every step define-by-run."""
    with ndl.capture.disabled():
        return needle_epoch(x, y, seed)


def floor_epoch(x, y, seed, losses=None):
    """The hand-fused numpy step (same initial weights and draws as needle); (seconds, rss)."""
    from mlp_resnet_floor import FloorMLPResNet
    model, _ = needle_model(seed)  # consumes the same draws as needle's init
    floor = FloorMLPResNet(model.state_dict(), BLOCKS, 0.1, lr=1e-3, weight_decay=1e-3)
    del model
    start = time.perf_counter()
    result = floor.epoch(x, y, BATCH)
    seconds = time.perf_counter() - start
    if losses is not None:
        losses.extend(result)
    return seconds, [rss_mb()]


def check_floor_matches_needle(x, y):
    """The floor is only a floor if it does needle's work: same losses, bit for bit."""
    n = min(len(x), 2000)
    needle_losses, floor_losses = [], []
    needle_epoch(x[:n], y[:n], 99, needle_losses)
    floor_epoch(x[:n], y[:n], 99, floor_losses)
    if needle_losses != floor_losses:
        raise SystemExit(f"floor and needle disagree: {needle_losses[:3]} vs {floor_losses[:3]}")
    print(f"floor check: {len(needle_losses)} steps, losses equal to needle's bit for bit")


def blas_report() -> str:
    """numpy's BLAS as threadpoolctl sees it (kernel = OpenBLAS 'architecture')."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel {i.get('architecture')} "
                     f"threads {i.get('num_threads')}" for i in threadpool_info() if i.get("user_api") == "blas")


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
    """Print median, best and worst epoch and the memory trace of the last one."""
    times = [t for t, _ in runs]
    median = statistics.median(times)
    rss = runs[-1][1]
    print(f"{name:21s} median {median:6.3f} s ({n / median:7,.0f} samples/s)  best {min(times):6.3f} s  "
          f"worst {max(times):6.3f} s  rss end {rss[-1]:.0f} MiB, peak {max(rss):.0f} MiB")


def ratio_line(runs, name, peer, target=None):
    """Ratio of medians (the figure the target is judged on), with the per-round ratios' median and
    spread (each round's pair ran close in time) and the ratio of the best epochs."""
    mine, theirs = [t for t, _ in runs[name]], [t for t, _ in runs[peer]]
    per_round = sorted(a / b for a, b in zip(mine, theirs))
    ratio = statistics.median(mine) / statistics.median(theirs)
    verdict = "" if target is None else f"  target <= {target}: {'met' if ratio <= target else 'MISSED'}"
    print(f"{name} / {peer}: {ratio:.3f} median/median; per-round median {statistics.median(per_round):.3f}, "
          f"spread {per_round[0]:.3f}..{per_round[-1]:.3f}; best/best {min(mine) / min(theirs):.3f}{verdict}")


def main(args):
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, FEATURES), dtype=np.float32)          # (N, 784) in [0, 1)
    y = rng.integers(0, CLASSES, size=args.samples).astype(np.uint8)    # (N,)
    print(f"BLAS: {blas_report()}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', 'unset')}")
    check_floor_matches_needle(x, y)
    contestants = {"needle": needle_epoch, "floor": floor_epoch}
    if not args.no_capture_peer:
        contestants["needle-no-capture"] = needle_uncaptured_epoch
    try:
        import torch
    except ImportError:
        torch = None
        print("torch not installed: no PyTorch ratios (pip install torch==2.13.0)")
    if torch is not None and not args.no_torch:
        default_threads = torch.get_num_threads()
        contestants["pytorch"] = lambda x, y, s: torch_epoch(x, y, s, default_threads)
        contestants["pytorch-1thread"] = lambda x, y, s: torch_epoch(x, y, s, 1)
        contestants["pytorch-fused"] = lambda x, y, s: torch_epoch(x, y, s, default_threads, fused=True)
        contestants["pytorch-fused-1thread"] = lambda x, y, s: torch_epoch(x, y, s, 1, fused=True)
    print(f"{args.samples} samples, batch {BATCH}, {args.repeats} interleaved rounds; "
          f"needle OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}"
          + (f"; torch {torch.__version__}, default {default_threads} threads" if "pytorch" in contestants else "")
          + f"; load average {os.getloadavg()[0]:.1f}")
    steal = StealMeter()
    runs = run_rounds(contestants, x, y, args.repeats)
    for name in contestants:
        report(name, runs[name], args.samples)
    print(f"load average after: {os.getloadavg()[0]:.1f}; {steal.report()}")
    ratio_line(runs, "needle", "floor", target=1.1)
    if "needle-no-capture" in runs:
        ratio_line(runs, "needle", "needle-no-capture")
    for peer, target in (("pytorch", 0.5), ("pytorch-1thread", None), ("pytorch-fused", 0.65),
                         ("pytorch-fused-1thread", None)):
        if peer in runs:
            ratio_line(runs, "needle", peer, target)


if __name__ == "__main__":
    sys.exit(main(ARGS))
