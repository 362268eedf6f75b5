"""JobExecution in-process against a real SQLite store: outcomes, fencing, release and resume."""
import numpy as np
import pytest

from service.jobs import Lease, Status
from service.jobs.execution import JobExecution
from service.settings import Settings
from service.specs import JobSpec, count_parameters
from service.training import parameters_from_bytes

SMALL = {"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1, "num_classes": 3},
         "optimizer": {"type": "adam", "lr": 0.01},
         "data": {"type": "spirals", "n_samples": 120, "validation": {"type": "fraction", "fraction": 0.25}},
         "training": {"epochs": 3, "batch_size": 16}}


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path, heartbeat_seconds=0.05, lease_seconds=5)


def submit(store, spec=SMALL):
    job = JobSpec.model_validate(spec)
    return store.create_job(job.model_dump(mode="json"), param_count=count_parameters(job.model),
                            epochs=1, steps=1)[0]


def execute(store, settings, worker="w1", should_stop=lambda: False):
    job = store.claim(worker, settings.lease_seconds)
    return JobExecution(store, settings, job, worker, should_stop).run(), job


def step_losses(store, job_id):
    return [p.values["loss"] for p in store.get_metrics(job_id) if p.kind == "step"]


def test_success_records_metrics_progress_result_and_parameters(store, settings):
    job = submit(store)
    outcome, _ = execute(store, settings)
    done = store.get_job(job.id)
    assert outcome == "succeeded" and done.status is Status.succeeded
    assert (done.epoch, done.epochs, done.step, done.steps) == (3, 3, 18, 18)
    points = store.get_metrics(job.id)
    assert [p.step for p in points if p.kind == "step"] == list(range(1, 19))
    epochs = [p for p in points if p.kind == "epoch"]
    assert [(p.epoch, p.step) for p in epochs] == [(1, 6), (2, 12), (3, 18)]
    assert set(epochs[0].values) == {"train_loss", "train_error", "val_loss", "val_error"}
    assert done.result["steps"] == 18 and done.result["val_loss"] == epochs[-1].values["val_loss"]
    state, model_spec = parameters_from_bytes(store.get_parameters(job.id))
    assert model_spec == done.spec["model"] and "0.weight" in state
    assert store.load_checkpoint(job.id) is None


def test_failures_end_the_job_with_a_message(store, settings):
    ds = store.create_dataset(name=None, blob=b"x", n_rows=1, n_features=2, n_classes=3)
    gone = submit(store, {**SMALL, "data": {"type": "dataset", "id": ds.id}})
    store.delete_dataset(ds.id)
    bad_npz = store.create_dataset(name=None, blob=b"not an npz", n_rows=1, n_features=2, n_classes=3)
    unreadable = submit(store, {**SMALL, "data": {"type": "dataset", "id": bad_npz.id}})
    diverging = submit(store, {**SMALL, "optimizer": {"type": "sgd", "lr": 1e30}})
    for _ in range(3):
        assert execute(store, settings)[0] == "failed"
    assert store.get_job(gone.id).error == f"dataset {ds.id} no longer exists (it was deleted)"
    assert "not a readable .npz" in store.get_job(unreadable.id).error
    failed = store.get_job(diverging.id)
    assert failed.error.startswith("loss became") and not failed.has_parameters
    k = int(failed.error.rsplit(" ", 1)[1])
    assert len(step_losses(store, diverging.id)) == k - 1  # the curve up to the divergence is kept


def test_cancel_keeps_metrics_and_stores_the_parameters_reached(store, settings):
    job = submit(store)
    store.claim("w1", 5)
    store.request_cancel(job.id)
    running = store.get_job(job.id)
    outcome = JobExecution(store, settings, running, "w1", lambda: False).run()
    done = store.get_job(job.id)
    assert outcome == "cancelled" and done.status is Status.cancelled and done.has_parameters
    assert done.result["steps"] == 1 and done.result["stopped"] == "cancelled" and step_losses(store, job.id) != []


def test_a_lost_lease_stops_the_attempt_without_writing(store, settings):
    job = submit(store)
    claimed = store.claim("w1", -1)  # already expired
    store.expire_leases(max_attempts=3)
    store.claim("w2", 30)
    outcome = JobExecution(store, settings, claimed, "w1", lambda: False).run()
    assert outcome == "lost"
    after = store.get_job(job.id)
    assert after.status is Status.running and after.worker_id == "w2" and store.get_metrics(job.id) == []


def test_release_then_resume_equals_an_uninterrupted_run(store, settings):
    interrupted, reference = submit(store), submit(store)
    steps_seen = []

    def stop_after_8():
        steps_seen.append(1)
        return len(steps_seen) >= 8  # asked after each event: 6 steps, epoch 1's end, step 7

    outcome, _ = execute(store, settings, "w1", stop_after_8)
    released = store.get_job(interrupted.id)
    assert outcome == "released" and released.status is Status.queued and released.step == 7
    assert store.load_checkpoint(interrupted.id) is not None
    assert execute(store, settings, "w2")[0] == "succeeded"   # resumes the released job first
    assert store.get_job(interrupted.id).attempt == 2
    assert execute(store, settings, "w2")[0] == "succeeded"
    assert step_losses(store, interrupted.id) == step_losses(store, reference.id)
    epochs = [[p.values for p in store.get_metrics(j.id) if p.kind == "epoch"] for j in (interrupted, reference)]
    assert epochs[0] == epochs[1]
    a, _ = parameters_from_bytes(store.get_parameters(interrupted.id))
    b, _ = parameters_from_bytes(store.get_parameters(reference.id))
    assert all(np.array_equal(a[k], b[k]) for k in b)


def test_resume_drops_metrics_recorded_after_the_checkpoint(store, settings):
    job = submit(store)
    claimed = store.claim("w1", 5)
    lease = Lease(job.id, "w1", claimed.attempt)
    store.add_metrics(lease, [("step", 0, s, {"loss": 99.0}) for s in range(1, 5)])  # a crashed attempt
    store.release(lease)
    assert execute(store, settings, "w2")[0] == "succeeded"
    assert 99.0 not in step_losses(store, job.id) and len(step_losses(store, job.id)) == 18


class FlakyStore:
    """Delegates to a real store; `check` raises while `failing` is set."""

    def __init__(self, store):
        self.store, self.failing, self.failures = store, 0, 0

    def check(self, lease):
        if self.failing:
            self.failing -= 1
            self.failures += 1
            raise ConnectionError("database went away")
        return self.store.check(lease)

    def __getattr__(self, name):
        return getattr(self.store, name)


@pytest.fixture
def check_every_step(monkeypatch):
    monkeypatch.setattr("service.jobs.execution.CHECK_MIN_SECONDS", 0.0)


def test_brief_store_errors_do_not_fail_the_job(store, settings, check_every_step):
    job = submit(store)
    flaky = FlakyStore(store)
    flaky.failing = 5
    settings = settings.model_copy(update={"heartbeat_seconds": 60})  # per-step checks only
    claimed = store.claim("w1", 5)
    assert JobExecution(flaky, settings, claimed, "w1", lambda: False).run() == "succeeded"
    assert flaky.failures == 5 and store.get_job(job.id).status is Status.succeeded
    assert len(step_losses(store, job.id)) == 18


def test_a_long_store_outage_gives_the_lease_up(store, settings, check_every_step):
    submit(store)
    flaky = FlakyStore(store)
    flaky.failing = 10**9
    settings = settings.model_copy(update={"heartbeat_seconds": 60, "lease_seconds": 0.0})
    claimed = store.claim("w1", 5)
    assert JobExecution(flaky, settings, claimed, "w1", lambda: False).run() == "lost"


def test_non_finite_metric_values_are_stored_as_null():
    from service.jobs.execution import json_safe
    assert json_safe({"val_loss": float("inf"), "val_error": 0.5, "x": float("nan"), "steps": 3}) == \
        {"val_loss": None, "val_error": 0.5, "x": None, "steps": 3}


def test_checks_are_throttled_for_fast_steps(store, settings):
    submit(store)
    counting = FlakyStore(store)
    checks = []
    counting.check = lambda lease: checks.append(1) or store.check(lease)
    settings = settings.model_copy(update={"heartbeat_seconds": 60})
    claimed = store.claim("w1", 5)
    assert JobExecution(counting, settings, claimed, "w1", lambda: False).run() == "succeeded"
    assert 1 <= len(checks) < 18 + 3  # at most one per step (plus epoch ends), at least the first


def test_an_internal_error_gives_the_user_a_message_and_the_log_the_details(store, settings,
                                                                              caplog):
    # a stored spec the builders cannot handle stands in for any bug inside the worker
    spec = {**JobSpec.model_validate(SMALL).model_dump(mode="json"),
            "optimizer": {"type": "rmsprop-internal-secret", "lr": 0.1}}
    job = store.create_job(spec, param_count=1, epochs=1, steps=1)[0]
    assert execute(store, settings)[0] == "failed"
    error = store.get_job(job.id).error
    assert "internal error" in error and job.id in error
    assert "rmsprop-internal-secret" not in error and "Error" not in error
    assert "rmsprop-internal-secret" in caplog.text and "Traceback" in caplog.text
