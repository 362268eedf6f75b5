"""The API's built models: LRU by job, bounded by count and by parameter bytes."""
import threading
from collections import OrderedDict
from typing import Callable

from service.training import TrainedModel

from .records import Job

CacheKey = tuple[str, float | None, int]


def cache_key(job: Job) -> CacheKey:
    """A job's parameters are written once, when it ends under a lease: the id, the end time and
    the attempt name that write (a job re-run after a restore ends at another time)."""
    return job.id, job.finished_at, job.attempt


class ModelCache:
    """Built TrainedModels by cache_key(job), least recently used evicted first. Lookups only
    ever follow a store read of the job, so a deleted job (or another tenant's) is a 404 before
    the cache is asked; discard() frees a deleted job's model at once."""

    def __init__(self, max_models: int, max_bytes: int):
        self.max_models, self.max_bytes = max_models, max_bytes
        self._models: OrderedDict[CacheKey, TrainedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def lookup(self, job: Job, load_parameters: Callable[[], bytes]) -> tuple[TrainedModel, bool]:
        """(the job's built model, whether it came from the cache); on a miss the model is built
        from load_parameters() and kept if it fits the bounds."""
        key = cache_key(job)
        with self._lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                self.hits += 1
                return model, True
            self.misses += 1
        model = TrainedModel(load_parameters())  # outside the lock: building can take seconds
        with self._lock:
            if self.max_models > 0 and model.nbytes <= self.max_bytes:
                self._drop(job.id)  # an older version of the same job
                self._models[key] = model
                self._evict()
        return model, False

    def discard(self, job_id: str) -> None:
        """Forget a job's model (the job was deleted)."""
        with self._lock:
            self._drop(job_id)

    def __len__(self) -> int:
        return len(self._models)

    def _drop(self, job_id: str) -> None:
        for key in [key for key in self._models if key[0] == job_id]:
            del self._models[key]

    def _evict(self) -> None:
        total = sum(model.nbytes for model in self._models.values())
        while self._models and (len(self._models) > self.max_models or total > self.max_bytes):
            _, model = self._models.popitem(last=False)
            total -= model.nbytes
