"""Stored parameters -> predictions and exports (the model always runs in eval mode)."""
from typing import Any

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


def predict_arrays(parameters: bytes, x: np.ndarray) -> dict[str, list]:
    """Logits, softmax probabilities and argmax classes for x (N, F), or (N, C, H, W) for a model
    with that input_shape; NonFiniteOutput instead of NaN/inf values (JSON has none)."""
    model, model_spec = load_model(parameters)
    x = np.asarray(x, dtype=np.float32)
    width, shape = input_width(model_spec), model_spec.get("input_shape")
    if x.ndim == 4 and (shape is None or list(x.shape[1:]) == list(shape)):
        x = x.reshape(len(x), -1)
    if x.ndim != 2 or x.shape[1] != width or len(x) == 0:
        expected = f"(N, {width})" + ("" if shape is None else f" or (N, {', '.join(map(str, shape))})")
        raise ValueError(f"x must have shape {expected} with N >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or infinite values")
    with ndl.no_grad(), np.errstate(over="ignore", invalid="ignore"):
        logits = model(ndl.Tensor(model_input(model_spec, x), dtype="float32", requires_grad=False)).numpy()
    logits = logits.astype(np.float64)  # (N, classes)
    bad_rows = np.flatnonzero(~np.isfinite(logits).all(axis=1))
    if len(bad_rows):
        raise NonFiniteOutput(bad_rows.tolist())
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    return {"logits": logits.tolist(), "probabilities": probabilities.tolist(),
            "classes": logits.argmax(axis=1).tolist()}


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
