"""A job's data spec -> training and validation arrays (float32 x; int64 labels (N,) or float32
regression targets (N, K)), preprocessed as the spec says."""
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from service.specs import validation_split_sizes

from .errors import TrainingError
from .generators import linear, spirals, teacher
from .preprocess import apply_preprocess, fit_preprocess

MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
DatasetFetcher = Callable[[str], bytes]  # dataset id -> .npz bytes; raises TrainingError if gone


@dataclass(frozen=True)
class TrainingData:
    """Arrays a job trains and validates on."""

    x_train: np.ndarray  # (N, F) float32, preprocessed (images flattened to C*H*W features)
    y_train: np.ndarray  # (N,) int64 labels, or (N, K) float32 regression targets
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    preprocess: dict[str, Any] | None = None  # fitted (preprocess.fit_preprocess), None = none
    image_shape: tuple[int, ...] | None = None  # (C, H, W) when the source gave images


def _flatten(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """(N, F) rows as they are; (N, C, H, W) images -> (N, C*H*W) rows and their (C, H, W)."""
    if x.ndim == 2:
        return x, None
    return x.reshape(len(x), -1), tuple(x.shape[1:])


def load_training_data(data_spec: dict[str, Any], seed: int, *, mnist_dir: Path | None,
                       fetch_dataset: DatasetFetcher, regression: bool = False) -> TrainingData:
    """Load the source, hold out validation rows as the spec says, then fit the preprocessing on
    the training rows and apply it to both splits."""
    raw = _split(data_spec, seed, mnist_dir=mnist_dir, fetch_dataset=fetch_dataset)
    y_train = _targets(raw.y_train, regression)
    y_val = None if raw.y_val is None else _targets(raw.y_val, regression)
    fitted = fit_preprocess(data_spec.get("preprocess"), raw.x_train)
    x_val = None if raw.x_val is None else apply_preprocess(fitted, raw.x_val)
    return TrainingData(apply_preprocess(fitted, raw.x_train), y_train, x_val, y_val, fitted,
                        raw.image_shape)


def _targets(y: np.ndarray, regression: bool) -> np.ndarray:
    """Labels stay int64 (N,); regression targets become float32 (N, K), K = 1 for a vector."""
    if not regression:
        if not np.issubdtype(y.dtype, np.integer):
            if y.ndim != 1 or not np.all(np.mod(y, 1) == 0):
                raise TrainingError("classification needs integer class labels y (N,)")
        if y.ndim != 1 or y.min() < 0:
            raise TrainingError("classification needs class labels y (N,) >= 0")
        return np.ascontiguousarray(y, dtype=np.int64)
    y = np.asarray(y, dtype=np.float32)
    if not np.all(np.isfinite(y)):
        raise TrainingError("regression targets contain NaN or infinite values")
    return np.ascontiguousarray(y.reshape(len(y), -1))


def _split(data_spec: dict[str, Any], seed: int, *, mnist_dir: Path | None,
           fetch_dataset: DatasetFetcher) -> TrainingData:
    """Raw training/validation arrays (before target conversion and preprocessing)."""
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
    """One data source -> (x (N, F) or (N, C, H, W) float32 raw, y (N,) int64 labels or float
    targets (N,)/(N, K))."""
    kind = source["type"]
    if kind == "inline":
        y = np.asarray(source["y"])
        y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
        return _checked(np.asarray(source["x"], dtype=np.float32), y)
    if kind == "spirals":
        return spirals(source["n_samples"], source["n_classes"], source["noise"], source["seed"])
    if kind == "teacher":
        return teacher(source["n_samples"], source["n_features"], source["n_classes"],
                       source["hidden_dim"], source["seed"])
    if kind == "linear":
        return linear(source["n_samples"], source["n_features"], source["n_targets"], source["noise"],
                      source["seed"])
    if kind == "dataset":
        return read_npz(fetch_dataset(source["id"]), f"dataset {source['id']}")
    if kind == "mnist":
        return read_mnist(mnist_dir, source["split"], source.get("limit"))
    raise TrainingError(f"unknown data type {kind!r}")


def read_npz(blob: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
    """An uploaded .npz with float `x` (N, F) or (N, C, H, W) and integer labels `y` (N,) or
    float targets (N,)/(N, K), never unpickled."""
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise TrainingError(f"{what} is not a readable .npz with arrays x and y: {exc}") from exc
    if y.dtype.kind not in "iuf":
        raise TrainingError(f"{what}: y must be integer labels or float targets, got {y.dtype}")
    y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    return _checked(x.astype(np.float32), y, what)


def read_mnist(mnist_dir: Path | None, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST IDX files from mnist_dir -> first `limit` rows (784 raw pixel values 0..255; the
    job's preprocess, scale 1/255 by default, maps them to [0, 1])."""
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
    pixels = np.rint(x.astype(np.float64) * 255).astype(np.float32)  # parse_mnist scaled to [0, 1]
    return _checked(pixels, y.astype(np.int64), "MNIST")


def _checked(x: np.ndarray, y: np.ndarray, what: str = "data") -> tuple[np.ndarray, np.ndarray]:
    if x.ndim not in (2, 4) or y.ndim not in (1, 2) or len(x) != len(y) or len(y) == 0:
        raise TrainingError(f"{what}: need x (N, F) or (N, C, H, W) and y (N,) or (N, K) with N >= 1, "
                            f"got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise TrainingError(f"{what}: x contains NaN or infinite values")
    if np.issubdtype(y.dtype, np.integer) and y.min() < 0:
        raise TrainingError(f"{what}: labels must be >= 0, found {int(y.min())}")
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def check_fits_model(data: TrainingData, in_features: int, num_classes: int,
                     input_shape: tuple[int, ...] | None = None) -> None:
    """Fail clearly when rows, labels or targets do not fit the model (uploaded data is checked
    only here); num_classes is the model's output width."""
    if None not in (data.image_shape, input_shape) and tuple(data.image_shape) != tuple(input_shape):
        raise TrainingError(f"the data's images are (C, H, W) = {tuple(data.image_shape)} but the "
                            f"model's input_shape is {list(input_shape)}")
    for x, y, part in ((data.x_train, data.y_train, "training"), (data.x_val, data.y_val, "validation")):
        if x is None:
            continue
        if x.shape[1] != in_features:
            raise TrainingError(f"{part} data has {x.shape[1]} features but the model expects {in_features}")
        if y.ndim == 2:
            if y.shape[1] != num_classes:
                raise TrainingError(f"{part} data has {y.shape[1]} regression target(s) per row but "
                                    f"the model outputs {num_classes}")
            continue
        if int(y.max()) >= num_classes:
            raise TrainingError(f"{part} labels must lie in [0, {num_classes}) but the data has label {int(y.max())}")
