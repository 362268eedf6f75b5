"""A job's data spec -> training and validation arrays (float32 x, int64 y)."""
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from service.specs import validation_split_sizes

from .errors import TrainingError
from .generators import spirals, teacher

MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
DatasetFetcher = Callable[[str], bytes]  # dataset id -> .npz bytes; raises TrainingError if gone


@dataclass(frozen=True)
class TrainingData:
    """Arrays a job trains and validates on."""

    x_train: np.ndarray  # (N, F) float32 (images flattened to C*H*W features)
    y_train: np.ndarray  # (N,) int64
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None  # (C, H, W) when the source gave images


def _flatten(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """(N, F) rows as they are; (N, C, H, W) images -> (N, C*H*W) rows and their (C, H, W)."""
    if x.ndim == 2:
        return x, None
    return x.reshape(len(x), -1), tuple(x.shape[1:])


def load_training_data(data_spec: dict[str, Any], seed: int, *, mnist_dir: Path | None,
                       fetch_dataset: DatasetFetcher) -> TrainingData:
    """Load the source, then hold out validation rows as the spec says."""
    x, y = load_source(data_spec, mnist_dir=mnist_dir, fetch_dataset=fetch_dataset)
    x, image_shape = _flatten(x)
    validation = data_spec.get("validation")
    if validation is None:
        return TrainingData(x, y, image_shape=image_shape)
    if validation["type"] == "fraction":
        n_train, n_val = validation_split_sizes(len(y), validation["fraction"])
        if n_train < 1:
            raise TrainingError(f"holding out {validation['fraction']} of {len(y)} rows leaves none to train on")
        perm = np.random.default_rng(seed).permutation(len(y))
        val, train = perm[:n_val], perm[n_val:]
        return TrainingData(x[train], y[train], x[val], y[val], image_shape=image_shape)
    x_val, y_val = load_source(validation["data"], mnist_dir=mnist_dir, fetch_dataset=fetch_dataset)
    x_val, val_shape = _flatten(x_val)
    if x_val.shape[1] != x.shape[1]:
        raise TrainingError(f"validation data has {x_val.shape[1]} features, training data {x.shape[1]}")
    if None not in (image_shape, val_shape) and image_shape != val_shape:
        raise TrainingError(f"validation images are {val_shape}, training images {image_shape}")
    return TrainingData(x, y, x_val, y_val, image_shape=image_shape or val_shape)


def load_source(source: dict[str, Any], *, mnist_dir: Path | None,
                fetch_dataset: DatasetFetcher) -> tuple[np.ndarray, np.ndarray]:
    """One data source -> (x (N, F) or (N, C, H, W) float32, y (N,) int64)."""
    kind = source["type"]
    if kind == "inline":
        return _checked(np.asarray(source["x"], dtype=np.float32), np.asarray(source["y"], dtype=np.int64))
    if kind == "spirals":
        return spirals(source["n_samples"], source["n_classes"], source["noise"], source["seed"])
    if kind == "teacher":
        return teacher(source["n_samples"], source["n_features"], source["n_classes"],
                       source["hidden_dim"], source["seed"])
    if kind == "dataset":
        return read_npz(fetch_dataset(source["id"]), f"dataset {source['id']}")
    if kind == "mnist":
        return read_mnist(mnist_dir, source["split"], source.get("limit"))
    raise TrainingError(f"unknown data type {kind!r}")


def read_npz(blob: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded .npz with float `x` (N, F) or (N, C, H, W) and integer `y` (N,), never
    unpickled."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise TrainingError(f"{what} is not a readable .npz with arrays x and y: {exc}") from exc
    if not np.issubdtype(y.dtype, np.integer):
        raise TrainingError(f"{what}: labels y must be integers, got {y.dtype}")
    return _checked(x.astype(np.float32), y.astype(np.int64), what)


def read_mnist(mnist_dir: Path | None, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST IDX files from mnist_dir -> first `limit` rows (784 features in [0, 1])."""
    from needle.data import parse_mnist
    if mnist_dir is None:
        raise TrainingError("MNIST is not available: the service has no mnist_dir (set NEEDLE_MNIST_DIR)")
    paths = [Path(mnist_dir) / name for name in MNIST_FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise TrainingError(f"MNIST files missing: {', '.join(missing)}")
    try:
        x, y = parse_mnist(str(paths[0]), str(paths[1]))
    except (ValueError, OSError) as exc:
        raise TrainingError(f"MNIST files unreadable: {exc}") from exc
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return _checked(x, y.astype(np.int64), "MNIST")


def _checked(x: np.ndarray, y: np.ndarray, what: str = "data") -> tuple[np.ndarray, np.ndarray]:
    if x.ndim not in (2, 4) or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise TrainingError(f"{what}: need x (N, F) or (N, C, H, W) and y (N,) with N >= 1, got "
                            f"{x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise TrainingError(f"{what}: x contains NaN or infinite values")
    if y.min() < 0:
        raise TrainingError(f"{what}: labels must be >= 0, found {int(y.min())}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def check_fits_model(data: TrainingData, in_features: int, num_classes: int,
                     input_shape: tuple[int, ...] | None = None) -> None:
    """Fail clearly when rows or labels do not fit the model (uploaded data is checked only here)."""
    if None not in (data.image_shape, input_shape) and tuple(data.image_shape) != tuple(input_shape):
        raise TrainingError(f"the data's images are (C, H, W) = {tuple(data.image_shape)} but the "
                            f"model's input_shape is {list(input_shape)}")
    for x, y, part in ((data.x_train, data.y_train, "training"), (data.x_val, data.y_val, "validation")):
        if x is None:
            continue
        if x.shape[1] != in_features:
            raise TrainingError(f"{part} data has {x.shape[1]} features but the model expects {in_features}")
        if int(y.max()) >= num_classes:
            raise TrainingError(f"{part} labels must lie in [0, {num_classes}) but the data has label {int(y.max())}")
