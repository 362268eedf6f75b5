"""The API's cache of built models: LRU by job, bounded by count and by parameter bytes, keyed so
that a job whose parameters were written again is rebuilt."""
import dataclasses

import numpy as np

from service.jobs import Job, Status
from service.jobs.model_cache import ModelCache
from service.training import parameters_to_bytes

MODEL = {"type": "sequential", "layers": [{"type": "linear", "in_features": 2, "out_features": 3}]}


def parameters(scale: float) -> bytes:
    return parameters_to_bytes({"0.weight": np.full((2, 3), scale, dtype=np.float32),
                                "0.bias": np.zeros((1, 3), dtype=np.float32)}, MODEL)


def job(job_id: str, finished_at: float = 1.0) -> Job:
    return Job(id=job_id, status=Status.succeeded, spec=None, param_count=9, created_at=0.0,
               finished_at=finished_at, attempt=1, has_parameters=True)


def loader(loads: list, key: str, scale: float = 1.0):
    return lambda: loads.append(key) or parameters(scale)


def test_models_are_built_once_and_the_least_recently_used_is_evicted():
    cache, loads = ModelCache(max_models=2, max_bytes=10**9), []
    first, cached = cache.lookup(job("a"), loader(loads, "a"))
    assert not cached and cache.lookup(job("a"), loader(loads, "a")) == (first, True)
    cache.lookup(job("b"), loader(loads, "b"))
    cache.lookup(job("a"), loader(loads, "a"))      # a is now the most recent
    cache.lookup(job("c"), loader(loads, "c"))      # evicts b
    cache.lookup(job("a"), loader(loads, "a"))
    cache.lookup(job("b"), loader(loads, "b"))
    assert loads == ["a", "b", "c", "b"] and len(cache) == 2


def test_the_byte_bound_discard_and_a_model_larger_than_the_cache():
    blob = parameters(1.0)
    cache, loads = ModelCache(max_models=10, max_bytes=len(blob) * 2), []
    for key in "abc":
        cache.lookup(job(key), loader(loads, key))
    assert len(cache) == 2 and not cache.lookup(job("a"), loader(loads, "a"))[1]  # a evicted
    cache.discard("a")
    assert not cache.lookup(job("a"), loader(loads, "a"))[1]
    tiny = ModelCache(max_models=10, max_bytes=len(blob) - 1)
    model, cached = tiny.lookup(job("a"), lambda: blob)
    assert not cached and len(tiny) == 0 and model.predict(np.ones((1, 2)))["classes"].tolist() == [0]


def test_parameters_written_again_are_a_new_model():
    cache, loads = ModelCache(max_models=10, max_bytes=10**9), []
    old, _ = cache.lookup(job("a"), loader(loads, "a", 1.0))
    again = dataclasses.replace(job("a"), finished_at=2.0)   # re-run and ended again
    new, cached = cache.lookup(again, loader(loads, "a", -1.0))
    assert not cached and new is not old and len(cache) == 1  # the old version is dropped
    x = np.ones((1, 2), dtype=np.float32)
    assert np.array_equal(new.predict(x)["logits"], -old.predict(x)["logits"])
