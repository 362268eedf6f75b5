"""Epoch-end checkpoints are bounded by their cost: at most CHECKPOINT_MAX_SHARE of the training time."""
import time

import pytest

from service.jobs import execution
from service.jobs.execution import JobExecution
from service.jobs.sqlite import SQLiteStore
from service.settings import Settings
from service.specs import JobSpec

# one step per epoch: epochs of a few milliseconds
MANY_EPOCHS = {"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 8, "num_blocks": 1, "num_classes": 3},
               "data": {"type": "spirals", "n_samples": 32}, "training": {"epochs": 12, "batch_size": 32}}


class SlowCheckpointStore(SQLiteStore):
    """Records checkpoint saves, each taking `save_seconds`."""

    def __init__(self, path, save_seconds: float):
        super().__init__(path)
        self.save_seconds, self.saved_at_epochs = save_seconds, []

    def save_checkpoint(self, lease, blob):
        time.sleep(self.save_seconds)
        self.saved_at_epochs.append(self.get_job(lease.job_id, with_spec=False).epoch)
        return super().save_checkpoint(lease, blob)


def run_job(tmp_path, save_seconds: float) -> SlowCheckpointStore:
    store = SlowCheckpointStore(tmp_path / "jobs.db", save_seconds)
    store.migrate()
    store.create_job(JobSpec.model_validate(MANY_EPOCHS).model_dump(mode="json"), param_count=1,
                     epochs=12, steps=12)
    job = store.claim("w1", 30)
    assert JobExecution(store, Settings(data_dir=tmp_path), job, "w1", lambda: False).run() == "succeeded"
    return store


def test_a_costly_checkpoint_is_taken_once_not_every_epoch(tmp_path):
    # 0.1 s per save: the next would be due after 10 s of training, and the job takes far less
    store = run_job(tmp_path, save_seconds=0.1)
    assert store.saved_at_epochs == [1]
    store.close()


def test_without_a_cost_bound_every_epoch_but_the_last_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setattr(execution, "CHECKPOINT_MAX_SHARE", float("inf"))
    store = run_job(tmp_path, save_seconds=0.0)
    assert store.saved_at_epochs == list(range(1, 12))
    store.close()
