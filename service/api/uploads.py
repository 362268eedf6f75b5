"""Turn an uploaded .npz (or JSON rows) into the stored blob: float32 x (N, F) or (N, C, H, W),
and int64 labels y (N,) or float32 regression targets y (N,) / (N, K)."""
import io
import zipfile
from dataclasses import dataclass

import numpy as np


class BadUpload(ValueError):
    """The upload is not a usable dataset; the message says why (422)."""


@dataclass(frozen=True)
class PreparedDataset:
    """A validated dataset ready for the store."""

    blob: bytes
    n_rows: int
    n_features: int
    n_classes: int  # max(y) + 1 for labels; 0 for float regression targets


def arrays_from_npz(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The `x` and `y` arrays of an .npz archive (never unpickles)."""
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise BadUpload(f"not a readable .npz archive: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise BadUpload("expected an .npz archive (np.savez), got a single .npy array")
    with archive:
        missing = [key for key in ("x", "y") if key not in archive.files]
        if missing:
            raise BadUpload(f"the archive lacks array(s) {missing}; it has {archive.files}")
        try:
            return archive["x"], archive["y"]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise BadUpload(f"cannot read x/y (object arrays are refused): {exc}") from None


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
        if (y < 0).any():
            raise BadUpload("labels must be >= 0")
        labels = y.astype(np.int64)  # (N,)
        np.savez(buffer, x=features, y=labels)
        n_classes = int(labels.max()) + 1
    return PreparedDataset(blob=buffer.getvalue(), n_rows=features.shape[0],
                           n_features=int(np.prod(features.shape[1:])), n_classes=n_classes)
