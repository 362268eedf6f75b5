"""Synthetic image data for the CNN tests: one oriented bar per image (no downloads, no sklearn)."""
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
