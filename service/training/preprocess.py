"""Input preprocessing that travels with the model: fitted on the training split, stored in the
parameters' header as JSON, applied to every x the model sees (training, validation, predict,
evaluate)."""
from typing import Any

import numpy as np


def fit_preprocess(spec: dict[str, Any] | None, x_train: np.ndarray) -> dict[str, Any]:
    """The fitted, JSON-able form of a data.preprocess spec (standardize: mean/std per feature
    of the training rows, in float64; a constant feature gets std 1)."""
    spec = spec or {"type": "none"}
    kind = spec["type"]
    if kind == "none":
        return {"type": "none"}
    if kind == "scale":
        return {"type": "scale", "factor": float(spec["factor"])}
    if kind == "standardize":
        x = x_train.astype(np.float64)  # (N, F)
        std = x.std(axis=0)
        std[std == 0] = 1.0
        return {"type": "standardize", "mean": x.mean(axis=0).tolist(), "std": std.tolist()}
    raise ValueError(f"unknown preprocess type {kind!r}")


def apply_preprocess(fitted: dict[str, Any] | None, x: np.ndarray) -> np.ndarray:
    """x (N, F) -> float32 (N, F) as the model was trained to see it (computed in float64)."""
    kind = (fitted or {"type": "none"})["type"]
    if kind == "none":
        return np.ascontiguousarray(x, dtype=np.float32)
    if kind == "scale":
        return (np.asarray(x, dtype=np.float64) * fitted["factor"]).astype(np.float32)
    if kind == "standardize":
        mean = np.asarray(fitted["mean"], dtype=np.float64)  # (F,)
        std = np.asarray(fitted["std"], dtype=np.float64)  # (F,)
        if x.shape[1] != mean.shape[0]:
            raise ValueError(f"x has {x.shape[1]} features; the preprocessing was fitted on {mean.shape[0]}")
        return ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)
    raise ValueError(f"unknown preprocess type {kind!r}")
