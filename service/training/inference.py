"""Stored parameters -> predictions, evaluations and exports (the model always runs in eval
mode, on inputs preprocessed as in training)."""
import json
from typing import Any, Iterable

import numpy as np

import needle as ndl

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


def predict_arrays(parameters: bytes, x: np.ndarray) -> dict[str, list]:
    """Classification: logits, softmax probabilities and argmax classes for raw x (N, F) (or
    (N, C, H, W) for a model with that input_shape); regression: outputs (N, K). The model's preprocessing is applied first. NonFiniteOutput
    instead of NaN/inf values (JSON has none)."""
    model, header = load_model_with_header(parameters)
    x = apply_preprocess(header["preprocess"], _checked_inputs(x, header["model"]))
    outputs = []
    with ndl.no_grad(), np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, len(x), EVAL_BATCH):
            batch = model_input(header["model"], x[start:start + EVAL_BATCH])  # (B, F) or (B, C, H, W)
            outputs.append(model(ndl.Tensor(batch, dtype="float32", requires_grad=False)).numpy())
    out = np.concatenate(outputs).astype(np.float64)  # (N, classes) or (N, K)
    bad_rows = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if len(bad_rows):
        raise NonFiniteOutput(bad_rows.tolist())
    if header["task"] == "regression":
        return {"outputs": out.tolist()}
    shifted = np.exp(out - out.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return {"logits": out.tolist(), "probabilities": probabilities.tolist(),
            "classes": out.argmax(axis=1).tolist()}


def evaluate_arrays(parameters: bytes, chunks: Iterable[tuple[np.ndarray, np.ndarray]],
                    loss_spec: dict[str, Any] | None) -> dict[str, Any]:
    """Metrics of the stored model on raw (x, y) chunks, preprocessed as in training: loss, error,
    accuracy, per-class precision/recall, confusion matrix (classification) or loss, RMSE, MAE,
    R^2 (regression). ValueError when the data does not fit the model."""
    model, header = load_model_with_header(parameters)
    regression = header["task"] == "regression"
    from service.specs import model_widths
    from service.specs.models import ModelSpec
    from pydantic import TypeAdapter
    _, width = model_widths(TypeAdapter(ModelSpec).validate_python(header["model"]))
    loss_fn = build_loss(loss_spec)
    sums = MetricSums(regression, width, confusion=True)
    for x, y in chunks:
        x = apply_preprocess(header["preprocess"], _checked_inputs(x, header["model"]))
        y = _checked_targets(y, len(x), regression, width)
        accumulate(model, loss_fn, sums, model_input(header["model"], x), y)
    if sums.rows == 0:
        raise ValueError("no rows to evaluate")
    return {"task": header["task"], **sums.report()}


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
    from pydantic import TypeAdapter

    from service.specs import model_widths
    from service.specs.models import ModelSpec
    return model_widths(TypeAdapter(ModelSpec).validate_python(model_spec))[0]


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
