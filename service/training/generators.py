"""Synthetic classification data, deterministic per seed."""
import numpy as np

TEACHER_PROBE_ROWS = 2048  # rows used once to centre the teacher's logits (balances its classes)


def spirals(n_samples: int, n_classes: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms: x (n_samples, 2) float32, y (n_samples,) int64, rows shuffled."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes  # (N,) balanced classes
    radius = rng.uniform(0.05, 1.0, n_samples)  # (N,)
    angle = y * (2 * np.pi / n_classes) + radius * 4.0 + rng.standard_normal(n_samples) * noise
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)  # (N, 2)
    order = rng.permutation(n_samples)
    return x[order].astype(np.float32), y[order].astype(np.int64)


def teacher(n_samples: int, n_features: int, n_classes: int, hidden_dim: int,
            seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian x (N, F) float32 labelled by argmax of a fixed random 2-layer ReLU net -> y (N,) int64."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((n_features, hidden_dim)) / np.sqrt(n_features)  # (F, H)
    b1 = rng.standard_normal(hidden_dim) * 0.5  # (H,)
    w2 = rng.standard_normal((hidden_dim, n_classes)) / np.sqrt(hidden_dim)  # (H, C)
    probe = rng.standard_normal((TEACHER_PROBE_ROWS, n_features))
    # Part of the fixed teacher: without centring, one class often takes most of the inputs.
    b2 = -(np.maximum(probe @ w1 + b1, 0) @ w2).mean(axis=0)  # (C,)
    x = rng.standard_normal((n_samples, n_features))  # (N, F)
    logits = np.maximum(x @ w1 + b1, 0) @ w2 + b2  # (N, C)
    return x.astype(np.float32), logits.argmax(axis=1).astype(np.int64)


def linear(n_samples: int, n_features: int, n_targets: int, noise: float,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Regression: Gaussian x (N, F) float32, y = x W + b + noise * N(0, 1) -> (N, K) float32, with
    W (F, K) ~ N(0, 1/F) and b (K,) ~ N(0, 1) fixed by the seed (so y has variance ~2 + noise^2)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_features, n_targets)) / np.sqrt(n_features)  # (F, K)
    b = rng.standard_normal(n_targets)  # (K,)
    x = rng.standard_normal((n_samples, n_features))  # (N, F)
    y = x @ w + b + noise * rng.standard_normal((n_samples, n_targets))  # (N, K)
    return x.astype(np.float32), y.astype(np.float32)
