"""Stored parameters -> predictions and exports (the model always runs in eval mode)."""
import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

import needle as ndl

from .builders import build_model, model_input
from .params import MEDIA_TYPES, encode, parameters_from_bytes, to_torch_layout


def load_model(parameters: bytes) -> tuple[Any, dict[str, Any]]:
    """Rebuild the trained needle model (eval mode) and return it with its model spec."""
    state, model_spec = parameters_from_bytes(parameters)
    rng_state = np.random.get_state()  # building draws initial weights: leave the caller's stream alone
    try:
        model = build_model(model_spec)
    finally:
        np.random.set_state(rng_state)
    model.load_state_dict(state)
    return model.eval(), model_spec


class NonFiniteOutput(ValueError):
    """The model's outputs overflow (NaN or inf) for some rows: huge weights or huge inputs."""

    def __init__(self, rows: list[int]):
        self.rows = rows
        super().__init__(f"the model's outputs are not finite for {len(rows)} row(s), first "
                         f"{rows[:10]}: its weights or these inputs are too large")


def predict_arrays(parameters: bytes, x: np.ndarray, chunk_rows: int = 1024) -> dict[str, list]:
    """Logits, softmax probabilities and argmax classes for x (N, F), or (N, C, H, W) for a model
    with that input_shape; NonFiniteOutput instead of NaN/inf values (JSON has none)."""
    return TrainedModel(parameters).predict(x, chunk_rows)


class TrainedModel:
    """A trained model rebuilt once from its stored parameters, ready to predict (eval mode).
    One instance may serve several threads: needle's forward pass keeps no shared state in
    eval mode and no_grad, so concurrent predictions are independent."""

    def __init__(self, parameters: bytes):
        self.model, self.model_spec = load_model(parameters)
        self.width = input_width(self.model_spec)
        self.shape = self.model_spec.get("input_shape")
        self.nbytes = len(parameters)

    def predict(self, x: np.ndarray, chunk_rows: int) -> dict[str, list]:
        """Outputs for x (N, F) or (N, C, H, W), `chunk_rows` rows at a time (bounded memory)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 4 and (self.shape is None or list(x.shape[1:]) == list(self.shape)):
            x = x.reshape(len(x), -1)
        if x.ndim != 2 or x.shape[1] != self.width or len(x) == 0:
            expected = f"(N, {self.width})" + (
                "" if self.shape is None else f" or (N, {', '.join(map(str, self.shape))})")
            raise ValueError(f"x must have shape {expected} with N >= 1, got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        chunks = [self._logits(x[start:start + chunk_rows])
                  for start in range(0, len(x), max(1, chunk_rows))]
        logits = np.concatenate(chunks).astype(np.float64)  # (N, classes)
        bad_rows = np.flatnonzero(~np.isfinite(logits).all(axis=1))
        if len(bad_rows):
            raise NonFiniteOutput(bad_rows.tolist())
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return {"logits": logits.tolist(), "probabilities": probabilities.tolist(),
                "classes": logits.argmax(axis=1).tolist()}

    def _logits(self, rows: np.ndarray) -> np.ndarray:
        with ndl.no_grad(), np.errstate(over="ignore", invalid="ignore"):
            return self.model(ndl.Tensor(model_input(self.model_spec, rows), dtype="float32",
                                         requires_grad=False)).numpy()


class ModelCache:
    """Trained models by job id, least recently used evicted first, bounded by the number of
    models and by their total parameter bytes (a job's parameters never change once stored)."""

    def __init__(self, max_models: int, max_bytes: int):
        self.max_models, self.max_bytes = max_models, max_bytes
        self._models: OrderedDict[str, TrainedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: str, load_parameters: Callable[[], bytes]) -> TrainedModel:
        """The cached model for `key`, or build it from load_parameters() and keep it."""
        return self.lookup(key, load_parameters)[0]

    def lookup(self, key: str, load_parameters: Callable[[], bytes]) -> tuple[TrainedModel, bool]:
        """(model, whether it came from the cache)."""
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
                self._models[key] = model
                self._models.move_to_end(key)
                self._evict()
        return model, False

    def discard(self, key: str) -> None:
        """Forget a model (its job was deleted)."""
        with self._lock:
            self._models.pop(key, None)

    def _evict(self) -> None:
        while self._models and (len(self._models) > self.max_models or
                                sum(m.nbytes for m in self._models.values()) > self.max_bytes):
            self._models.popitem(last=False)


def input_width(model_spec: dict[str, Any]) -> int:
    """Feature count the model expects."""
    from pydantic import TypeAdapter

    from service.specs import model_widths
    from service.specs.models import ModelSpec
    return model_widths(TypeAdapter(ModelSpec).validate_python(model_spec))[0]


def export_arrays(parameters: bytes, fmt: str, layout: str, batches_tracked: int = 0) -> tuple[bytes, str]:
    """Stored parameters -> (body, media type) in the requested format and layout."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown export format {fmt!r}: use json, safetensors or npz")
    if layout not in ("needle", "torch"):
        raise ValueError(f"unknown layout {layout!r}: use needle or torch")
    state, model_spec = parameters_from_bytes(parameters)
    if layout == "torch":
        state = to_torch_layout(state, batches_tracked)
    return encode(state, fmt, model_spec, layout), MEDIA_TYPES[fmt]
