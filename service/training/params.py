"""Trained parameters: a model's state_dict as safetensors bytes, with its model spec in the metadata."""
import io
import json
from typing import Any

import numpy as np

from .blobs import pack, unpack

FORMAT = "needle-state-v1"
MEDIA_TYPES = {"json": "application/json", "safetensors": "application/octet-stream",
               "npz": "application/octet-stream"}


def parameters_to_bytes(state: dict[str, np.ndarray], model_spec: dict[str, Any], *,
                        preprocess: dict[str, Any] | None = None, task: str = "classification") -> bytes:
    """Stored form of a trained model (needle layout, key order kept in the header), with the
    fitted input preprocessing and the task, which /predict and /evaluate apply."""
    return pack(state, {"format": FORMAT, "model": model_spec, "keys": list(state),
                        "preprocess": preprocess or {"type": "none"}, "task": task})


def parameters_from_bytes(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(state_dict in needle order, model spec) from stored parameters."""
    state, header = parameters_with_header(blob)
    return state, header["model"]


def parameters_with_header(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(state_dict in needle order, header: model, preprocess, task) from stored parameters."""
    arrays, header = unpack(blob)
    if header.get("format") != FORMAT:
        raise ValueError(f"unknown parameters format {header.get('format')!r}")
    header.setdefault("preprocess", {"type": "none"})
    header.setdefault("task", "classification")
    return {key: arrays[key] for key in header["keys"]}, header


def to_torch_layout(state: dict[str, np.ndarray], batches_tracked: int = 0) -> dict[str, np.ndarray]:
    """needle layout -> PyTorch's: Linear weight (in,out)->(out,in), bias (1,out)->(out,), Conv
    weight (K,K,C_in,C_out)->(C_out,C_in,K,K), plus BatchNorm num_batches_tracked, so an
    equivalent torch module loads it strictly."""
    norm_prefixes = {key[: -len("running_mean")] for key in state if key.endswith("running_mean")}
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        prefix, name = _split(key)
        if name == "weight" and value.ndim == 2:      # only Linear weights are 2-D in needle
            value = value.T
        elif name == "weight" and value.ndim == 4:    # Conv kernels (K, K, C_in, C_out)
            value = value.transpose(3, 2, 0, 1)
        elif name == "bias" and value.ndim == 2:      # Linear bias (1, out)
            value = value.reshape(-1)
        out[key] = np.require(value, requirements="C")
        if name == "running_var" and prefix in norm_prefixes:
            out[f"{prefix}num_batches_tracked"] = np.array(batches_tracked, dtype=np.int64)
    return out


def _split(key: str) -> tuple[str, str]:
    """'2.0.fn.1.weight' -> ('2.0.fn.1.', 'weight')."""
    head, _, name = key.rpartition(".")
    return (f"{head}." if head else ""), name


def encode(state: dict[str, np.ndarray], fmt: str, model_spec: dict[str, Any], layout: str,
           extra: dict[str, Any] | None = None) -> bytes:
    """state_dict -> bytes in json / safetensors / npz (safetensors metadata: model spec, key
    order and `extra`, e.g. the preprocessing)."""
    if fmt == "json":
        doc = {key: {"shape": list(v.shape), "dtype": str(v.dtype), "data": v.tolist()} for key, v in state.items()}
        return json.dumps(doc).encode()
    if fmt == "safetensors":
        return pack(state, {"format": f"needle-service-export-{layout}", "model": model_spec, "keys": list(state),
                            **(extra or {})})
    if fmt == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **state)
        return buffer.getvalue()
    raise ValueError(f"unknown export format {fmt!r}: use json, safetensors or npz")
