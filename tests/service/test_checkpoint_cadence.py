"""Epoch-end checkpoints: one every `checkpoint_every_epochs`, written off the training thread."""
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

    def save_checkpoint(self, lease, blob):
        time.sleep(self.save_seconds)
        self.saved_epochs.append(checkpoint_from_bytes(blob).epoch)
        self.saving_threads.add(threading.current_thread().name)
        return super().save_checkpoint(lease, blob)


def run_job(tmp_path, save_seconds: float, every: int = 1) -> SlowCheckpointStore:
    store = SlowCheckpointStore(tmp_path / "jobs.db", save_seconds)
    store.migrate()
    store.create_job(JobSpec.model_validate(MANY_EPOCHS).model_dump(mode="json"), param_count=1,
                     epochs=12, steps=12)
    job = store.claim("w1", 30)
    settings = Settings(data_dir=tmp_path, checkpoint_every_epochs=every)
    assert JobExecution(store, settings, job, "w1", lambda: False).run() == "succeeded"
    return store


def test_every_epoch_but_the_last_checkpoints_even_when_saves_are_slow(tmp_path):
    store = run_job(tmp_path, save_seconds=0.02)
    assert store.saved_epochs == list(range(1, 12))
    assert all(name.startswith("checkpoint-") for name in store.saving_threads)  # not the training thread
    assert store.load_checkpoint(store.list_jobs()[0][0].id) is None  # a finished job keeps no checkpoint
    store.close()


def test_the_cadence_is_configurable(tmp_path):
    store = run_job(tmp_path, save_seconds=0.0, every=5)
    assert store.saved_epochs == [5, 10]
    store.close()
