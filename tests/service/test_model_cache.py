"""The API's cache of built models: LRU by job id, bounded by count and by parameter bytes."""
import numpy as np

from service.training import ModelCache, parameters_to_bytes

MODEL = {"type": "sequential", "layers": [{"type": "linear", "in_features": 2, "out_features": 3}]}


def parameters(scale: float) -> bytes:
    return parameters_to_bytes({"0.weight": np.full((2, 3), scale, dtype=np.float32),
                                "0.bias": np.zeros((1, 3), dtype=np.float32)}, MODEL)


def test_models_are_built_once_and_the_least_recently_used_is_evicted():
    cache, loads = ModelCache(max_models=2, max_bytes=10**9), []

    def loader(key):
        return lambda: loads.append(key) or parameters(1.0)

    first = cache.get("a", loader("a"))
    assert cache.get("a", loader("a")) is first
    cache.get("b", loader("b"))
    cache.get("a", loader("a"))      # a is now the most recent
    cache.get("c", loader("c"))      # evicts b
    cache.get("a", loader("a"))
    cache.get("b", loader("b"))
    assert loads == ["a", "b", "c", "b"]
    assert first.predict(np.ones((4, 2)), chunk_rows=3)["classes"] == [0, 0, 0, 0]


def test_the_byte_bound_and_discard():
    blob = parameters(1.0)
    cache = ModelCache(max_models=10, max_bytes=len(blob) * 2)
    for key in "abc":
        cache.get(key, lambda: blob)
    assert cache.misses == 3 and cache.get("a", lambda: blob) and cache.misses == 4  # a evicted
    cache.discard("a")
    cache.get("a", lambda: blob)
    assert cache.misses == 5


def test_chunked_predictions_equal_one_pass():
    model = ModelCache(1, 10**9).get("j", lambda: parameters(0.5))
    x = np.random.default_rng(0).normal(size=(10, 2))
    assert model.predict(x, chunk_rows=3) == model.predict(x, chunk_rows=100)
