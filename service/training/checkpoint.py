"""Everything a job needs to resume bit-identically, serialised without pickle."""
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blobs import pack, unpack

FORMAT = "needle-service-checkpoint-v1"


@dataclass
class Checkpoint:
    """Model, optimizer, RNG, position in the data order and the in-progress epoch's sums."""

    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any]          # needle: {"step": int, "state": {index: {name: array}}}
    rng_state: tuple                          # np.random.get_state()
    epoch: int                                # completed epochs
    batch: int                                # next batch index within the current epoch
    step: int                                 # completed optimizer steps
    order: np.ndarray | None                  # (n_train,) current epoch's data order, None between epochs
    accumulators: dict[str, float | int]      # running loss sum / errors / seen of the current epoch
    runtime_s: float                          # training time spent before this checkpoint
    last_epoch_metrics: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # stop reason, early-stopping state
    best_state: dict[str, np.ndarray] | None = None  # early stopping's best epoch (restore_best)


def to_bytes(ckpt: Checkpoint) -> bytes:
    """Serialise a checkpoint as safetensors arrays + JSON header."""
    kind, keys, pos, has_gauss, cached_gaussian = ckpt.rng_state
    arrays = {f"model/{name}": value for name, value in ckpt.model_state.items()}
    for name, value in (ckpt.best_state or {}).items():
        arrays[f"best/{name}"] = value
    for index, buffers in ckpt.optimizer_state["state"].items():
        for name, value in buffers.items():
            arrays[f"optim/{int(index)}/{name}"] = value
    arrays["rng/keys"] = np.asarray(keys, dtype=np.uint32)
    if ckpt.order is not None:
        arrays["order"] = np.asarray(ckpt.order, dtype=np.int64)
    header = {"format": FORMAT, "model_keys": list(ckpt.model_state),
              "optimizer_step": int(ckpt.optimizer_state["step"]),
              "rng": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                      "cached_gaussian": float(cached_gaussian)},
              "epoch": ckpt.epoch, "batch": ckpt.batch, "step": ckpt.step,
              "accumulators": ckpt.accumulators, "runtime_s": ckpt.runtime_s,
              "last_epoch_metrics": ckpt.last_epoch_metrics, "extra": ckpt.extra,
              "best_keys": None if ckpt.best_state is None else list(ckpt.best_state)}
    return pack(arrays, header)


def from_bytes(blob: bytes) -> Checkpoint:
    """Inverse of to_bytes."""
    arrays, header = unpack(blob)
    if header.get("format") != FORMAT:
        raise ValueError(f"unknown checkpoint format {header.get('format')!r}")
    model_state = {name: arrays[f"model/{name}"] for name in header["model_keys"]}  # keeps key order
    optimizer_buffers: dict[int, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            optimizer_buffers.setdefault(int(index), {})[name] = value
    rng = header["rng"]
    rng_state = (rng["kind"], arrays["rng/keys"], rng["pos"], rng["has_gauss"], rng["cached_gaussian"])
    return Checkpoint(model_state=model_state,
                      optimizer_state={"step": header["optimizer_step"], "state": optimizer_buffers},
                      rng_state=rng_state, epoch=header["epoch"], batch=header["batch"], step=header["step"],
                      order=arrays.get("order"), accumulators=header["accumulators"],
                      runtime_s=header["runtime_s"], last_epoch_metrics=header["last_epoch_metrics"],
                      extra=header.get("extra", {}),
                      best_state=None if header.get("best_keys") is None
                      else {name: arrays[f"best/{name}"] for name in header["best_keys"]})
