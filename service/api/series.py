"""Display-sized loss curves: min/max-preserving downsampling, so spikes stay visible."""
import numpy as np


def min_max_downsample(x: np.ndarray, y: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `points` of the (x, y) points, x ascending: the series is cut into points // 2
    buckets of consecutive points and each keeps its lowest and its highest point, in x order
    (one point when they coincide). Every local extreme of a bucket survives, unlike striding or
    averaging, which hide spikes. Returns (x, y) unchanged when short enough."""
    n = len(x)
    if n <= points:
        return x, y
    buckets = max(1, points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)  # (buckets + 1,)
    keep: list[int] = []
    for start, stop in zip(edges[:-1], edges[1:]):
        if stop <= start:
            continue
        segment = y[start:stop]
        low, high = start + int(np.argmin(segment)), start + int(np.argmax(segment))
        keep.extend(sorted({low, high}))
    index = np.asarray(keep, dtype=np.int64)  # (<= points,)
    return x[index], y[index]
