"""Turn an uploaded .npz (or JSON rows) into the stored blob: float32 x (N, F) or (N, C, H, W),
int64 y (N,)."""
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
    n_classes: int


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
    """Check shapes, dtypes and values, then serialise as .npz of float32 x and int64 y."""
    if x.ndim not in (2, 4) or x.size < 1:
        raise BadUpload(f"x must be a non-empty 2-D array (rows, features) or 4-D array (rows, "
                        f"channels, height, width); got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise BadUpload(f"y must be 1-D with one label per row of x ({x.shape[0]}); "
                        f"got shape {y.shape}")
    if x.dtype.kind not in "fiu":
        raise BadUpload(f"x must be numeric; got dtype {x.dtype}")
    if y.dtype.kind not in "iu":
        raise BadUpload(f"y must hold integer labels; got dtype {y.dtype}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported just below
        features = x.astype(np.float32)  # (N, F) or (N, C, H, W), kept as sent
    if not np.isfinite(features).all():
        raise BadUpload("x has NaN or infinite values (after conversion to float32)")
    if (y < 0).any():
        raise BadUpload("labels must be >= 0")
    labels = y.astype(np.int64)  # (N,)
    buffer = io.BytesIO()
    np.savez(buffer, x=features, y=labels)
    return PreparedDataset(blob=buffer.getvalue(), n_rows=features.shape[0],
                           n_features=int(np.prod(features.shape[1:])),
                           n_classes=int(labels.max()) + 1)
