"""Benchmark: CPU instructions per MLPResNet training step, needle vs its floor, counted by valgrind.

    .venv/bin/python bench/needle_mlp_instructions.py [--steps 10]

Timings on this shared machine swing by ±15 % from one round to the next; instruction counts do
not. Each contestant (needle's course loop, with capture, and bench/mlp_resnet_floor.py) runs
under `valgrind --tool=callgrind` twice, with 5 warm-up steps and then 0 or --steps steps; the
difference divided by --steps is one step's count, split into CPython's own code (the
interpreter: bytecode dispatch, attribute lookups, frames, object allocation) and everything else
(numpy, OpenBLAS, libc). The model and batch are the MLP benchmark's (784-100-3 blocks-10, batch
100, Adam with weight decay); PYTHONHASHSEED is fixed, so a rerun gives the same counts. Needs
valgrind (Debian's `valgrind` package); takes about a minute per contestant.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARM_UP = 5


def run_steps(who: str, steps: int) -> None:
    """Inside valgrind: WARM_UP steps, then `steps` more, of needle or the floor."""
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    import numpy as np
    import needle as ndl
    from mlp_resnet_floor import FloorMLPResNet

    rng = np.random.default_rng(0)
    n = 100 * (WARM_UP + steps + 1)
    x = rng.random((n, 784), dtype=np.float32)  # (N, 784)
    y = rng.integers(0, 10, size=n).astype(np.uint8)  # (N,)
    np.random.seed(0)
    model = ndl.models.MLPResNet(784, 100, 3, 10, norm=ndl.nn.BatchNorm1d, drop_prob=0.1)
    opt = ndl.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-3)
    if who == "needle":
        loss_fn, batches = ndl.nn.SoftmaxLoss(), iter(ndl.data.DataLoader(ndl.data.NDArrayDataset(x, y), 100))
        model.train()
        for xb, yb in (next(batches) for _ in range(WARM_UP + steps)):
            opt.reset_grad()
            loss_fn(model(xb), yb).backward()
            opt.step()
    else:
        floor = FloorMLPResNet(model.state_dict(), 3, 0.1, lr=1e-3, weight_decay=1e-3)
        for lo in range(0, 100 * (WARM_UP + steps), 100):  # the DataLoader's batches, as it takes them
            rows = np.arange(lo, lo + 100)
            floor.step(np.take(x, rows, axis=0), np.take(y, rows, axis=0).astype(np.intp))


def counts(who: str, steps: int, out_dir: str) -> tuple[int, int]:
    """(CPython, other) instructions of a whole run with `steps` steps after the warm-up."""
    out = os.path.join(out_dir, f"{who}.{steps}.out")
    env = dict(os.environ, PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                    __file__, "--inside", who, str(steps)], env=env, check=True, capture_output=True)
    report = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", out],
                            capture_output=True, text=True, check=True).stdout
    interpreter = other = 0
    for line in report.splitlines():
        match = re.match(r"\s*([\d,]+)\s+\(.*?\)\s+(\S+):", line)
        if match and "PROGRAM TOTALS" not in line:
            count = int(match.group(1).replace(",", ""))
            if "Python-3" in match.group(2) or "libpython" in line:  # CPython's own sources
                interpreter += count
            else:
                other += count
    return interpreter, other


def main() -> None:
    if sys.argv[1:2] == ["--inside"]:
        return run_steps(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out_dir:
        per_step = {}
        for who in ("needle", "floor"):
            (i0, o0), (i1, o1) = counts(who, 0, out_dir), counts(who, args.steps, out_dir)
            per_step[who] = ((i1 - i0) / args.steps, (o1 - o0) / args.steps)
            print(f"{who:6s}: {per_step[who][0] / 1e6:.3f} M CPython + {per_step[who][1] / 1e6:.3f} M other "
                  f"instructions per step")
    (ni, no), (fi, fo) = per_step["needle"], per_step["floor"]
    print(f"needle - floor: {(ni - fi) / 1e3:.0f} K CPython, {(no - fo) / 1e3:.0f} K other instructions per step")


if __name__ == "__main__":
    main()
