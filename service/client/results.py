"""What the client hands back besides plain JSON: events, metric series, decoded parameters."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# a job's statuses after which nothing changes ("pruned": a sweep trial stopped early)
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "pruned"})


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: `type` "status" (data: the job), "metric" (data: one metric
    point, `id` its seq) or "end" (data: the final job; the stream is over)."""

    type: str
    data: dict[str, Any]
    id: int | None = None


@dataclass
class Metrics:
    """A job's metrics as numpy arrays: `steps` holds "step" (the optimizer step of each step
    point) and one array per value ("loss", ...); `epochs` holds "epoch", "step" and one array
    per epoch value ("train_loss", "val_error", ...). Missing values are NaN."""

    steps: dict[str, np.ndarray] = field(default_factory=dict)
    epochs: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_points(cls, points: list[dict[str, Any]]) -> "Metrics":
        """Series from the API's metric points (any order of kinds)."""
        return cls(steps=_series([p for p in points if p["kind"] == "step"], ("step",)),
                   epochs=_series([p for p in points if p["kind"] == "epoch"], ("epoch", "step")))


def _series(points: list[dict[str, Any]], index: tuple[str, ...]) -> dict[str, np.ndarray]:
    names: dict[str, None] = {}
    for point in points:
        names.update(dict.fromkeys(point["values"]))
    out = {key: np.array([p[key] for p in points], dtype=np.int64) for key in index}
    for name in names:
        values = [p["values"].get(name) for p in points]
        out[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return out


def decode_parameters(body: bytes, fmt: str) -> dict[str, np.ndarray]:
    """Downloaded parameters -> {name: array} (never unpickles)."""
    if fmt == "npz":
        with np.load(io.BytesIO(body), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    if fmt == "json":
        return {name: np.asarray(entry["data"], dtype=entry["dtype"]).reshape(entry["shape"])
                for name, entry in json.loads(body).items()}
    if fmt == "safetensors":
        from safetensors.numpy import load  # only for this format
        return dict(load(body))
    raise ValueError(f"unknown format {fmt!r}: use npz, json or safetensors")


def prediction_arrays(body: dict[str, Any]) -> dict[str, np.ndarray]:
    """The /predict response with every list as a numpy array (classes int64, others float64)."""
    out = {}
    for name, value in body.items():
        if isinstance(value, list):
            value = np.asarray(value, dtype=np.int64 if name == "classes" else np.float64)
        out[name] = value
    return out


def npz_bytes(x, y) -> bytes:
    """An in-memory .npz with x (N, F) and y (N,), as the dataset upload expects."""
    buffer = io.BytesIO()
    np.savez(buffer, x=np.asarray(x), y=np.asarray(y))
    return buffer.getvalue()
