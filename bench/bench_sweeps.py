"""Benchmark (not a test): a 27-trial random sweep with and without ASHA early stopping, 2 workers.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_sweeps.py [--repeats 3]

Starts the real service (`needle-service serve --workers 2`, SQLite), then in interleaved rounds
submits the same 27 seeded random trials (log-uniform learning rate, width and depth of an
MLP-ResNet on teacher data) once without and once with ASHA (grace 1 epoch, reduction factor 3,
9 epochs: rungs at 1 and 3),
and times each from submission until every trial has ended. Prints, per contestant, the median
and spread of the wall time, the best objective found, the epochs trained, and ASHA's ratios
against the full sweep measured in the same run.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from bench/: the helpers live in the tests
from api_tests.server import Server  # noqa: E402

EPOCHS = 9
BASE = {
    "model": {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 1,
              "num_classes": 4, "norm": "layernorm", "drop_prob": 0.0},
    "optimizer": {"type": "adam", "lr": 0.003},
    "data": {"type": "teacher", "n_samples": 4000, "n_features": 20, "n_classes": 4, "seed": 1,
             "validation": {"type": "fraction", "fraction": 0.2}},
    "training": {"epochs": EPOCHS, "batch_size": 32, "seed": 0},
}
PARAMETERS = {"optimizer.lr": {"type": "loguniform", "low": 1e-5, "high": 3e-2},
              "model.hidden_dim": {"values": [16, 64, 128]},
              "model.num_blocks": {"type": "int_uniform", "low": 1, "high": 3}}
STRATEGY = {"type": "random", "n_trials": 27, "seed": 0}
ASHA = {"type": "asha", "grace_epochs": 1, "reduction_factor": 3, "max_epochs": EPOCHS}


def sweep_spec(early_stopping: dict | None) -> dict:
    """The 27 trials; two at a time (one per worker)."""
    return {"base": BASE, "parameters": PARAMETERS, "strategy": STRATEGY,
            "objective": {"metric": "val_loss", "mode": "min"}, "max_parallel": 2,
            "early_stopping": early_stopping}


def run_sweep(server: Server, early_stopping: dict | None) -> dict:
    """Submit, wait (polling twice a second) and summarise one sweep."""
    start = time.perf_counter()
    sweep = server.submit_sweep(sweep_spec(early_stopping))
    while (done := server.sweep(sweep["id"]))["status"] == "running":
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    assert done["status"] == "succeeded", done["counts"]
    return {"seconds": seconds, "best": done["best"]["objective"], "best_params": done["best"]["params"],
            "epochs": done["total_epochs"], "pruned": done["counts"].get("pruned", 0)}


def blas_kernel() -> str:
    """What threadpoolctl reports for numpy's BLAS in this interpreter (the workers load the same)."""
    import numpy  # noqa: F401  (loads the BLAS library threadpoolctl inspects)
    from threadpoolctl import threadpool_info
    return ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')}"
                     for i in threadpool_info()) or "none found"


def spread(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (full, ASHA)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.2f}; BLAS: {blas_kernel()}")
    runs: dict[str, list[dict]] = {"full": [], "asha": []}
    with tempfile.TemporaryDirectory(prefix="needle-bench-sweeps-") as tmp:
        # workers at normal priority: at nice 10 they would only measure whoever shares the machine
        server = Server(Path(tmp), workers=2, env={"NEEDLE_WORKER_NICE": "0"}).start()
        try:
            server.train({**BASE, "training": {**BASE["training"], "epochs": 1}})  # warm-up
            for round_ in range(args.repeats):
                for name, early in (("full", None), ("asha", ASHA)):   # interleaved rounds
                    row = run_sweep(server, early)
                    runs[name].append(row)
                    print(f"round {round_ + 1} {name:<4}: {row['seconds']:6.1f} s, best val_loss "
                          f"{row['best']:.4f} {row['best_params']}, {row['epochs']} epochs, "
                          f"{row['pruned']} pruned", flush=True)
        finally:
            server.stop()
    medians = {name: {key: statistics.median(r[key] for r in rows) for key in ("seconds", "best", "epochs")}
               for name, rows in runs.items()}
    print(f"\n{'sweep':<6} {'wall s (median)':>15} {'spread':>11} {'best val_loss':>13} {'epochs':>7} "
          f"{'time ratio':>10} {'epoch ratio':>11}")
    for name, rows in runs.items():
        m = medians[name]
        print(f"{name:<6} {m['seconds']:>15.1f} {spread([r['seconds'] for r in rows]):>11} "
              f"{m['best']:>13.4f} {m['epochs']:>7.0f} {m['seconds'] / medians['full']['seconds']:>9.2f}x "
              f"{m['epochs'] / medians['full']['epochs']:>10.2f}x")
    gap = medians["asha"]["best"] - medians["full"]["best"]
    print(f"ASHA's best is {gap:+.4f} val_loss from the full sweep's ({gap / medians['full']['best']:+.1%})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
