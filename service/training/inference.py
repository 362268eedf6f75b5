"""Stored parameters -> predictions, evaluations and exports (the model always runs in eval
mode, on inputs preprocessed as in training)."""
import json
import threading
from typing import Any, Iterable

import numpy as np

import needle as ndl
from service.specs import model_widths, parse_model

from .builders import build_loss, build_model, model_input
from .evaluation import EVAL_BATCH, MetricSums, accumulate
from .params import MEDIA_TYPES, encode, parameters_with_header, to_torch_layout
from .preprocess import apply_preprocess


def load_model(parameters: bytes) -> tuple[Any, dict[str, Any]]:
    """Rebuild the trained needle model (eval mode) and return it with its model spec."""
    model, header = load_model_with_header(parameters)
    return model, header["model"]


def load_model_with_header(parameters: bytes) -> tuple[Any, dict[str, Any]]:
    """The trained model (eval mode) and the parameters' header (model, preprocess, task)."""
    state, header = parameters_with_header(parameters)
    rng_state = np.random.get_state()  # building draws initial weights: leave the caller's stream alone
    try:
        model = build_model(header["model"])
    finally:
        np.random.set_state(rng_state)
    model.load_state_dict(state)
    return model.eval(), header


class NonFiniteOutput(ValueError):
    """The model's outputs overflow (NaN or inf) for some rows: huge weights or huge inputs."""

    def __init__(self, rows: list[int]):
        self.rows = rows
        super().__init__(f"the model's outputs are not finite for {len(rows)} row(s), first "
                         f"{rows[:10]}: its weights or these inputs are too large")


def input_rows(x: np.ndarray, model_spec: dict[str, Any]) -> np.ndarray:
    """Raw rows (N, F), or (N, C, H, W) for a model with that input_shape, as float32 (N, F)
    (what /predict accepts; also used by the client's needle twin). ValueError otherwise."""
    x = np.asarray(x, dtype=np.float32)
    width, shape = input_width(model_spec), model_spec.get("input_shape")
    if x.ndim == 4 and (shape is None or list(x.shape[1:]) == list(shape)):
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != width or len(x) == 0:
        expected = f"(N, {width})" + ("" if shape is None else f" or (N, {', '.join(map(str, shape))})")
        raise ValueError(f"x must have shape {expected} with N >= 1, got {x.shape}")
    return x


def _checked_inputs(x: np.ndarray, model_spec: dict[str, Any]) -> np.ndarray:
    """input_rows, and finite."""
    x = input_rows(x, model_spec)
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    return x


class TrainedModel:
    """A stored model built once (eval mode) for predictions and evaluations in chunks of rows.
    Shared between threads: each chunk's forward pass holds the model's lock."""

    def __init__(self, parameters: bytes):
        self.model, self.header = load_model_with_header(parameters)
        self.model_spec, self.task = self.header["model"], self.header["task"]
        self.nbytes = len(parameters)  # what a cache of built models charges for it
        self._lock = threading.Lock()

    def outputs(self, x: np.ndarray, chunk_rows: int) -> np.ndarray:
        """Raw x (N, F) (or (N, C, H, W) for a model with that input_shape) -> outputs (N, K)
        float64, chunk_rows rows per forward pass. NonFiniteOutput instead of NaN/inf values."""
        x = _checked_inputs(x, self.model_spec)  # (N, F)
        chunks = [self._forward(x[start:start + chunk_rows])
                  for start in range(0, len(x), max(1, chunk_rows))]
        out = np.concatenate(chunks).astype(np.float64)  # (N, K)
        bad_rows = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if len(bad_rows):
            raise NonFiniteOutput(bad_rows.tolist())
        return out

    def predict(self, x: np.ndarray, chunk_rows: int = EVAL_BATCH) -> dict[str, np.ndarray]:
        """Classification: logits, softmax probabilities and argmax classes; regression:
        outputs (N, K). Arrays; the API writes them out as JSON."""
        out = self.outputs(x, chunk_rows)
        if self.task == "regression":
            return {"outputs": out}
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return {"logits": out, "probabilities": probabilities, "classes": out.argmax(axis=1)}

    def evaluate(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]],
                 loss_spec: dict[str, Any] | None, chunk_rows: int = EVAL_BATCH) -> dict[str, Any]:
        """Metrics on raw (x, y) chunks, preprocessed as in training: loss, error, accuracy,
        per-class precision/recall, confusion matrix (classification) or loss, RMSE, MAE, R^2
        (regression), chunk_rows rows per forward pass. ValueError when the data does not fit."""
        regression = self.task == "regression"
        width = output_width(self.model_spec)
        loss_fn = build_loss(loss_spec)
        sums = MetricSums(regression, width, confusion=True)
        for x, y in chunks:
            x = _checked_inputs(x, self.model_spec)
            y = _checked_targets(y, len(x), regression, width)
            for start in range(0, len(x), max(1, chunk_rows)):
                rows = self._model_rows(x[start:start + chunk_rows])
                with self._lock:
                    accumulate(self.model, loss_fn, sums, rows, y[start:start + chunk_rows], chunk_rows)
        if sums.rows == 0:
            raise ValueError("no rows to evaluate")
        return {"task": self.task, **sums.report()}

    def _model_rows(self, rows: np.ndarray) -> np.ndarray:
        """Raw checked rows (B, F) -> preprocessed, shaped as the model takes them."""
        return model_input(self.model_spec, apply_preprocess(self.header["preprocess"], rows))

    def _forward(self, rows: np.ndarray) -> np.ndarray:
        batch = self._model_rows(rows)  # (B, F) or (B, C, H, W)
        with self._lock, ndl.no_grad(), np.errstate(over="ignore", invalid="ignore"):
            return self.model(ndl.Tensor(batch, dtype="float32", requires_grad=False)).numpy()


def predict_arrays(parameters: bytes, x: np.ndarray, chunk_rows: int = EVAL_BATCH) -> dict[str, list]:
    """TrainedModel.predict of stored parameters, as lists."""
    return {key: value.tolist() for key, value in TrainedModel(parameters).predict(x, chunk_rows).items()}


def evaluate_arrays(parameters: bytes, chunks: Iterable[tuple[np.ndarray, np.ndarray]],
                    loss_spec: dict[str, Any] | None, chunk_rows: int = EVAL_BATCH) -> dict[str, Any]:
    """TrainedModel.evaluate of stored parameters."""
    return TrainedModel(parameters).evaluate(chunks, loss_spec, chunk_rows)


def _checked_targets(y: np.ndarray, rows: int, regression: bool, width: int) -> np.ndarray:
    if len(y) != rows:
        raise ValueError(f"y has {len(y)} rows but x has {rows}")
    if regression:
        y = np.asarray(y, dtype=np.float32).reshape(rows, -1)
        if y.shape[1] != width or not np.isfinite(y).all():
            raise ValueError(f"y must be {width} finite target(s) per row, got shape {y.shape}")
        return y
    if y.ndim != 1 or not np.all(np.mod(y, 1) == 0) or (len(y) and (y.min() < 0 or y.max() >= width)):
        raise ValueError(f"y must be integer class labels in [0, {width})")
    return np.asarray(y, dtype=np.int64)


def input_width(model_spec: dict[str, Any]) -> int:
    """Feature count the model expects."""
    return model_widths(parse_model(model_spec))[0]


def output_width(model_spec: dict[str, Any]) -> int:
    """Classes (or regression targets) the model outputs."""
    return model_widths(parse_model(model_spec))[1]


def export_arrays(parameters: bytes, fmt: str, layout: str, batches_tracked: int = 0) -> tuple[bytes, str]:
    """Stored parameters -> (body, media type) in the requested format and layout."""
    body, media_type, _ = export_with_preprocess(parameters, fmt, layout, batches_tracked)
    return body, media_type


def export_with_preprocess(parameters: bytes, fmt: str, layout: str,
                           batches_tracked: int = 0) -> tuple[bytes, str, str]:
    """(body, media type, JSON of {"preprocess", "task"}): safetensors carries the latter in its
    metadata; the API also sends it as a response header for every format."""
    if fmt not in MEDIA_TYPES:
        raise ValueError(f"unknown export format {fmt!r}: use json, safetensors or npz")
    if layout not in ("needle", "torch"):
        raise ValueError(f"unknown layout {layout!r}: use needle or torch")
    state, header = parameters_with_header(parameters)
    if layout == "torch":
        state = to_torch_layout(state, batches_tracked)
    extra = {"preprocess": header["preprocess"], "task": header["task"]}
    return encode(state, fmt, header["model"], layout, extra), MEDIA_TYPES[fmt], json.dumps(extra)
