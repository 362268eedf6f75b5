"""Checkpoints by time: one once `checkpoint_interval_s` of training passed since the last (server
setting, per-job override), written off the training thread; small jobs pay nothing."""
import threading
import time

from service.jobs.execution import JobExecution
from service.jobs.sqlite import SQLiteStore
from service.settings import Settings
from service.specs import JobSpec
from service.training import checkpoint_from_bytes

# one step per epoch: epochs of a few milliseconds
MANY_EPOCHS = {"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 8, "num_blocks": 1, "num_classes": 3},
               "data": {"type": "spirals", "n_samples": 32}, "training": {"epochs": 12, "batch_size": 32}}


class SlowCheckpointStore(SQLiteStore):
    """Records the epoch of each saved checkpoint and the thread that saved it; each save is slow."""

    def __init__(self, path, save_seconds: float):
        super().__init__(path)
        self.save_seconds, self.saved_epochs, self.saving_threads = save_seconds, [], set()
        self.metrics_behind: list[int] = []  # checkpoint step - last stored step point, per save

    def save_checkpoint(self, lease, blob):
        time.sleep(self.save_seconds)
        checkpoint = checkpoint_from_bytes(blob)
        self.saved_epochs.append(checkpoint.epoch)
        stored = [p.step for p in self.get_metrics(lease.job_id) if p.kind == "step"]
        self.metrics_behind.append(checkpoint.step - max(stored, default=0))
        self.saving_threads.add(threading.current_thread().name)
        return super().save_checkpoint(lease, blob)


def run_job(tmp_path, save_seconds: float, interval: float = 10.0, spec_interval: float | None = None,
            epochs: int = 12) -> SlowCheckpointStore:
    store = SlowCheckpointStore(tmp_path / "jobs.db", save_seconds)
    store.migrate()
    body = {**MANY_EPOCHS, "training": {**MANY_EPOCHS["training"], "epochs": epochs,
                                        "checkpoint_interval_s": spec_interval}}
    store.create_job(JobSpec.model_validate(body).model_dump(mode="json"), param_count=1,
                     epochs=epochs, steps=epochs)
    job = store.claim("w1", 30)
    settings = Settings(data_dir=tmp_path, checkpoint_interval_s=interval)
    assert JobExecution(store, settings, job, "w1", lambda: False).run() == "succeeded"
    return store


def test_a_short_job_writes_no_checkpoint(tmp_path):
    store = run_job(tmp_path, save_seconds=0.0)
    assert store.saved_epochs == []
    store.close()


def test_a_tiny_interval_checkpoints_between_steps_off_the_training_thread(tmp_path):
    store = run_job(tmp_path, save_seconds=0.02, interval=1e-6)
    # one step per epoch: checkpoints after steps and epoch ends, never after the last epoch
    assert store.saved_epochs and store.saved_epochs == sorted(store.saved_epochs)
    assert max(store.saved_epochs) <= 11 and len(store.saved_epochs) >= 11
    assert all(name.startswith("checkpoint-") for name in store.saving_threads)  # not the training thread
    assert set(store.metrics_behind) == {0}  # a resume never misses the points before its checkpoint
    assert store.load_checkpoint(store.list_jobs()[0][0].id) is None  # a finished job keeps no checkpoint
    store.close()


def test_the_job_overrides_the_server_interval(tmp_path):
    store = run_job(tmp_path, save_seconds=0.0, interval=1e-6, spec_interval=3600)
    assert store.saved_epochs == []
    store.close()


class Crash(BaseException):
    """Stands in for a SIGKILL: nothing after it runs (no release, no final flush)."""


def test_a_crash_between_checkpoints_resumes_with_every_metric_point(tmp_path):
    def steps_of(store, job_id):
        return [(p.step, p.values["loss"]) for p in store.get_metrics(job_id) if p.kind == "step"]

    clean = run_job(tmp_path / "clean", save_seconds=0.0, interval=1e-6)
    want = steps_of(clean, clean.list_jobs()[0][0].id)
    store = SlowCheckpointStore(tmp_path / "jobs.db", 0.0)
    store.migrate()
    store.create_job(JobSpec.model_validate(MANY_EPOCHS).model_dump(mode="json"), param_count=1,
                     epochs=12, steps=12)
    job = store.claim("w1", 0.2)
    events = iter(range(1000))

    def crash_after_some_events():
        if next(events) == 8:  # right after step 5 (events alternate step, epoch end)
            raise Crash()
        return False
    settings = Settings(data_dir=tmp_path, checkpoint_interval_s=1e-6)
    try:
        JobExecution(store, settings, job, "w1", crash_after_some_events).run()
    except Crash:
        pass
    time.sleep(0.3)  # the lease runs out
    store.expire_leases(3)
    again = store.claim("w2", 30)
    assert again.attempt == 2 and store.load_checkpoint(again.id) is not None
    assert JobExecution(store, settings, again, "w2", lambda: False).run() == "succeeded"
    assert steps_of(store, again.id) == want
    store.close()
    clean.close()
