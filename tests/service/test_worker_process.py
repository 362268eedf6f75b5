"""Real worker processes (`run_worker`) on a temporary SQLite database."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from service.jobs import Status
from service.specs import JobSpec, count_parameters
from service.training import parameters_from_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICK = {"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1, "num_classes": 3},
         "data": {"type": "spirals", "n_samples": 100}, "training": {"epochs": 2, "batch_size": 20}}
# Long enough (a few seconds) to be interrupted in the middle.
LONG = {"model": {"type": "mlp_resnet", "in_features": 20, "hidden_dim": 64, "num_blocks": 2, "num_classes": 4},
        "optimizer": {"type": "adam", "lr": 0.001},
        "data": {"type": "teacher", "n_samples": 2000, "n_features": 20, "n_classes": 4},
        "training": {"epochs": 6, "batch_size": 16}}


@pytest.fixture
def start_worker(tmp_path):
    """Start `python -m service.jobs.worker` processes; kills any still running at the end."""
    procs = []

    def start(*args: str) -> subprocess.Popen:
        env = dict(os.environ, NEEDLE_DATA_DIR=str(tmp_path), NEEDLE_HEARTBEAT_SECONDS="0.2",
                   NEEDLE_POLL_SECONDS="0.02", PYTHONPATH=ROOT)
        env.pop("NEEDLE_DATABASE_URL", None)
        proc = subprocess.Popen([sys.executable, "-m", "service.jobs.worker", *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()


def submit(store, spec):
    job = JobSpec.model_validate(spec)
    return store.create_job(job.model_dump(mode="json"), param_count=count_parameters(job.model),
                            epochs=1, steps=1)[0].id


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def step_losses(store, job_id):
    return [p.values["loss"] for p in store.get_metrics(job_id) if p.kind == "step"]


def test_worker_trains_survives_failures_and_registers(store, start_worker):
    good = submit(store, QUICK)
    diverging = submit(store, {**QUICK, "optimizer": {"type": "sgd", "lr": 1e30}})
    missing = submit(store, {**QUICK, "model": {**QUICK["model"], "in_features": 784, "num_classes": 10},
                             "data": {"type": "mnist"}})
    after = submit(store, QUICK)
    worker = start_worker()
    wait_for(lambda: store.get_job(after).status.terminal, what="the last job")
    assert store.live_workers(5) == 1
    assert store.get_job(good).status is Status.succeeded and store.get_job(after).status is Status.succeeded
    assert store.get_job(diverging).error.startswith("loss became")
    assert "MNIST" in store.get_job(missing).error
    assert step_losses(store, good) == step_losses(store, after)  # same spec, same losses
    assert worker.poll() is None
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert store.live_workers(60) == 0


def test_sigterm_mid_job_checkpoints_and_releases_then_resume_is_exact(store, start_worker):
    interrupted = submit(store, LONG)
    worker = start_worker()
    wait_for(lambda: store.get_job(interrupted).step >= 100, what="training progress")
    stopping_at = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert time.monotonic() - stopping_at < 5
    released = store.get_job(interrupted)
    assert released.status is Status.queued and released.worker_id is None and 0 < released.step < 750
    assert store.load_checkpoint(interrupted) is not None

    reference = submit(store, LONG)  # the same job, never interrupted
    start_worker()
    wait_for(lambda: store.get_job(reference).status.terminal, timeout=60, what="both jobs")
    finished = store.get_job(interrupted)
    assert finished.status is Status.succeeded and finished.attempt == 2
    assert step_losses(store, interrupted) == step_losses(store, reference)
    assert len(step_losses(store, interrupted)) == 750
    a, _ = parameters_from_bytes(store.get_parameters(interrupted))
    b, _ = parameters_from_bytes(store.get_parameters(reference))
    assert all(np.array_equal(a[k], b[k]) for k in b)


def test_cancel_reaches_the_running_worker(store, start_worker):
    job = submit(store, LONG)
    start_worker()
    wait_for(lambda: store.get_job(job).step > 0, what="training progress")
    store.request_cancel(job)
    done = wait_for(lambda: (j := store.get_job(job)).status.terminal and j, timeout=10, what="cancellation")
    assert done.status is Status.cancelled and done.has_parameters and done.result["steps"] > 0
    assert len(step_losses(store, job)) == done.result["steps"]


def test_worker_exits_when_its_parent_is_gone(start_worker):
    parent = subprocess.Popen(["sleep", "60"])
    worker = start_worker("--parent-pid", str(parent.pid))
    time.sleep(1.0)
    assert worker.poll() is None
    parent.kill()
    parent.wait()
    assert worker.wait(timeout=10) == 0
