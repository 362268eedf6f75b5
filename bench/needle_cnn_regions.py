"""Where a multi-threaded CNN step waits: each needle.parallel region of the bench CNN, timed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/needle_cnn_regions.py [--steps 200]

For every region (the op that called parallel.run, and its caller's line), per training step:
the caller's own part, its wait for the workers afterwards, how late the workers started their
parts after being handed them, and how long their parts ran. A copy of parallel.run with clocks
around each stage stands in for it while the steps run; the work itself is unchanged.
"""
import argparse
import collections
import os
import sys
import time
from pathlib import Path

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before numpy: needle.parallel wants one BLAS thread
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.needle_cnn import BATCHES, NeedleTrainer, make_data  # noqa: E402
from needle import parallel  # noqa: E402

FIELDS = ("caller part", "caller wait", "worker start", "worker part")


def timed_run(totals, calls):
    """A parallel.run that adds each stage's seconds to totals[region] and counts calls[region]."""
    def run(part_fn, length, elements):
        parts = parallel.split(length, elements)
        if len(parts) == 1 or not parallel._busy.acquire(blocking=False):
            part_fn(slice(0, length))
            return
        caller = sys._getframe(1)
        if caller.f_code is parallel.run_blocks.__code__:  # name the op, not the block helper
            caller = caller.f_back
        region = f"{caller.f_code.co_name} < {caller.f_back.f_code.co_name}:{caller.f_back.f_lineno}"
        starts, ends = [], []

        def worker_part(part):
            starts.append(time.perf_counter())
            part_fn(part)
            ends.append(time.perf_counter())
        try:
            workers = parallel._workers(len(parts) - 1)
            handed = time.perf_counter()
            for worker, part in zip(workers, parts[1:]):
                worker.give(worker_part, part)
            began = time.perf_counter()
            part_fn(parts[0])
            done = time.perf_counter()
            for worker in workers:
                worker.wait()
            waited = time.perf_counter()
        finally:
            parallel._busy.release()
        stages = (done - began, waited - done, max(starts) - handed,
                  max(e - s for s, e in zip(starts, ends)))
        totals[region] = [t + s for t, s in zip(totals[region], stages)]
        calls[region] += 1
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    x, y = make_data()
    trainer = NeedleTrainer(threads=args.threads)
    for i in range(5):  # warm-up: captured step, pools, caches
        trainer.step(x[i % BATCHES], y[i % BATCHES])
    totals, calls = collections.defaultdict(lambda: [0.0] * len(FIELDS)), collections.Counter()
    parallel.run = timed_run(totals, calls)
    start = time.perf_counter()
    for i in range(args.steps):
        trainer.step(x[i % BATCHES], y[i % BATCHES])
    step = (time.perf_counter() - start) / args.steps
    print(f"{args.threads} threads, {args.steps} steps: {step * 1e3:.2f} ms a step (clocks included)")
    print(f"{'region':52s}" + "".join(f"{f:>14s}" for f in FIELDS) + "   (us a step)")
    for region, stages in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"{region:52s}" + "".join(f"{s / args.steps * 1e6:14.0f}" for s in stages)
              + f"   x{calls[region] // args.steps}")
    sums = [sum(t[i] for t in totals.values()) / args.steps * 1e6 for i in range(len(FIELDS))]
    print(f"{'all regions':52s}" + "".join(f"{s:14.0f}" for s in sums))


if __name__ == "__main__":
    main()
