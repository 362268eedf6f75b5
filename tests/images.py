"""Synthetic image data for the CNN tests: one oriented bar per image (no downloads, no sklearn),
and MNIST-format IDX files to serve them as the `mnist` source."""
import gzip
import struct
from pathlib import Path

import numpy as np

ORIENTATIONS = ("horizontal", "vertical", "diagonal", "anti-diagonal")


def oriented_bars(n: int, size: int = 8, seed: int = 0, noise: float = 0.1):
    """x (n, 1, size, size) float32 with one bar of length size // 2 + 1 at a random place, on
    Gaussian noise; y (n,) int64 its orientation, an index into ORIENTATIONS."""
    rng = np.random.default_rng(seed)
    length = size // 2 + 1
    x = (rng.standard_normal((n, 1, size, size)) * noise).astype(np.float32)
    y = rng.integers(0, len(ORIENTATIONS), n)
    steps = np.arange(length)
    for i, label in enumerate(y):
        top, left = rng.integers(0, size - length + 1, 2)
        rows, cols = {0: (np.full(length, top), left + steps),
                      1: (top + steps, np.full(length, left)),
                      2: (top + steps, left + steps),
                      3: (top + steps, left + length - 1 - steps)}[int(label)]
        x[i, 0, rows, cols] += 1.0
    return x, y.astype(np.int64)


def write_idx(path, magic, dims, payload: bytes, compress=True):
    """Write an IDX file (big-endian header) the way MNIST ships it: gzip-compressed."""
    raw = struct.pack(f">i{len(dims)}i", magic, *dims) + payload
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_mnist_bars(directory: Path, n: int, prefix: str = "train", seed: int = 0) -> np.ndarray:
    """MNIST-format files (28x28 uint8 images of oriented bars, labels 0-3) under the names the
    service reads (`train-...` or `t10k-...`); returns the labels."""
    x, y = oriented_bars(n, size=28, seed=seed, noise=0.05)
    pixels = (np.clip(x[:, 0], 0, 1) * 255).astype(np.uint8)  # (n, 28, 28)
    write_idx(Path(directory) / f"{prefix}-images-idx3-ubyte.gz", 2051, (n, 28, 28), pixels.tobytes())
    write_idx(Path(directory) / f"{prefix}-labels-idx1-ubyte.gz", 2049, (n,),
              y.astype(np.uint8).tobytes())
    return y
