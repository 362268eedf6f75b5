"""In-process A/B of the bench CNN's training step: needle as it is (B) against needle with one of
its BatchNorm speed-ups switched off (A), interleaved rounds in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/needle_cnn_ab.py --off fused-pool [--threads 2] [--rounds 9]

--off fused-pool: Sequential does not fuse BatchNorm2d, ReLU and MaxPool2d(2) (BatchNorm2d.fuses_pool).
--off blocks: BatchNorm's passes over big arrays run as whole-array passes and GEMVs, as before
  its block passes (and the fused stage, which needs them, is off in both contestants).
Prints each round's ms/step and the ratio B/A (median and min-max over the rounds).
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: needle.parallel wants one BLAS thread
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.needle_cnn import BATCHES, NeedleTrainer, make_data  # noqa: E402
from needle import nn  # noqa: E402
from needle.ops import ops_fused  # noqa: E402

ROW_BLOCKS = ops_fused.blocked.row_blocks


def switch(off: str, enabled: bool) -> None:
    """Turn the speed-up `off` on (enabled) or off for the steps that follow."""
    if off == "fused-pool":
        nn.BatchNorm2d.fuses_pool = enabled
        return
    nn.BatchNorm2d.fuses_pool = False
    ops_fused.blocked.row_blocks = ROW_BLOCKS if enabled else (lambda rows, width: None)
    ops_fused._rows_of.cache_clear()  # geometries keep their blocks: make them again


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--off", choices=["fused-pool", "blocks"], required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed unit")
    args = parser.parse_args()
    x, y = make_data()
    trainers = {}
    for enabled in (False, True):
        switch(args.off, enabled)
        trainers[enabled] = NeedleTrainer(threads=args.threads)
        for i in range(5):  # warm-up: the captured step, pools, caches
            trainers[enabled].step(x[i % BATCHES], y[i % BATCHES])
    ratios = []
    for r in range(args.rounds):
        seconds = {}
        for enabled in ((False, True) if r % 2 == 0 else (True, False)):
            switch(args.off, enabled)
            start = time.perf_counter()
            for i in range(args.steps):
                trainers[enabled].step(x[i % BATCHES], y[i % BATCHES])
            seconds[enabled] = (time.perf_counter() - start) / args.steps
        ratios.append(seconds[True] / seconds[False])
        print(f"round {r}: {args.off} off {seconds[False] * 1e3:.2f} ms, on {seconds[True] * 1e3:.2f} ms, "
              f"on/off {ratios[-1]:.3f}")
    print(f"{args.threads} threads, {args.rounds} rounds: on/off median {statistics.median(ratios):.3f} "
          f"({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
