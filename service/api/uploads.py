"""Turn an uploaded .npz (or JSON rows) into the stored blob: float32 x (N, F) or (N, C, H, W),
and int64 labels y (N,) or float32 regression targets y (N,) / (N, K)."""
import io
from dataclasses import dataclass

import numpy as np

from ..specs import LABEL_LIMIT
from .npz_reader import BadArchive, read_npz_arrays


class BadUpload(ValueError):
    """The upload is not a usable dataset; the message says why (422)."""


@dataclass(frozen=True)
class PreparedDataset:
    """A validated dataset ready for the store."""

    blob: bytes
    n_rows: int
    n_features: int
    n_classes: int  # max(y) + 1 for labels; 0 for float regression targets


def arrays_from_npz(data: bytes, max_inflated_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """The `x` and `y` arrays of an .npz archive (never unpickles, never inflates more than
    max_inflated_bytes, checks every header before reading the data)."""
    try:
        return read_npz_arrays(data, max_inflated_bytes)
    except BadArchive as exc:
        raise BadUpload(str(exc)) from None


def prepare_dataset(x: np.ndarray, y: np.ndarray) -> PreparedDataset:
    """Check shapes, dtypes and values, then serialise as .npz of float32 x and int64 labels
    (integer y) or float32 targets (float y, for regression)."""
    if x.ndim not in (2, 4) or x.size < 1:
        raise BadUpload(f"x must be a non-empty 2-D array (rows, features) or 4-D array (rows, "
                        f"channels, height, width); got shape {x.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0] or (y.ndim == 2 and y.shape[1] < 1):
        raise BadUpload(f"y must be (N,) labels or targets, or (N, K) targets, with N = "
                        f"{x.shape[0]} rows as in x; got shape {y.shape}")
    if x.dtype.kind not in "fiu":
        raise BadUpload(f"x must be numeric; got dtype {x.dtype}")
    if y.dtype.kind not in "fiu":
        raise BadUpload(f"y must hold integer labels or float targets; got dtype {y.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported just below
        features = x.astype(np.float32)  # (N, F) or (N, C, H, W), kept as sent
        targets = y.astype(np.float32) if y.dtype.kind == "f" else None
    if not np.isfinite(features).all():
        raise BadUpload("x has NaN or infinite values (after conversion to float32)")
    buffer = io.BytesIO()
    if targets is not None:
        if not np.isfinite(targets).all():
            raise BadUpload("y has NaN or infinite values (after conversion to float32)")
        np.savez(buffer, x=features, y=targets)
        n_classes = 0
    else:
        if y.ndim != 1:
            raise BadUpload(f"integer labels y must be (N,); got shape {y.shape}")
        # checked on y's own dtype: uint64 2**64 - 1 would turn into -1 as int64
        if (y < 0).any():
            raise BadUpload("labels must be >= 0")
        if int(y.max()) >= LABEL_LIMIT:
            raise BadUpload(f"labels must be < {LABEL_LIMIT}; the largest is {int(y.max())}")
        labels = y.astype(np.int64)  # (N,)
        np.savez(buffer, x=features, y=labels)
        n_classes = int(labels.max()) + 1
    return PreparedDataset(blob=buffer.getvalue(), n_rows=features.shape[0],
                           n_features=int(np.prod(features.shape[1:])), n_classes=n_classes)
