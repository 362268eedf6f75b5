"""Loss ops: regression losses (MSE, L1, Huber) and label-smoothed softmax cross-entropy.

Each is one graph node holding its (constant) target; the result is a 0-d mean of the input's dtype,
differentiable w.r.t. the prediction only, with a numpy gradient (first-order, like the fused ops).
Definitions follow PyTorch's defaults (reduction="mean" over every element).
"""
import numpy as np

from ..autograd import Tensor, TensorOp

__all__ = ["RegressionLoss", "mse_loss", "l1_loss", "huber_loss",
           "SmoothedSoftmaxLoss", "smoothed_softmax_loss"]


def _target_array(target, like: np.ndarray) -> np.ndarray:
    """A target (Tensor or array) as an array of the prediction's dtype and shape."""
    given = target.numpy() if isinstance(target, Tensor) else np.asarray(target)
    if given.shape != like.shape:
        raise ValueError(f"target shape {given.shape} differs from prediction shape {like.shape}")
    return given.astype(like.dtype, copy=False)


class RegressionLoss(TensorOp):
    """mean over all elements of mse: d^2, l1: |d|, huber: 0.5 d^2 (|d| < delta) else
    delta (|d| - 0.5 delta), where d = prediction - target."""

    def __init__(self, kind: str, target, delta: float = 1.0):
        if kind not in ("mse", "l1", "huber"):
            raise ValueError(f"unknown regression loss {kind!r}")
        if delta <= 0:
            raise ValueError(f"huber delta must be > 0, got {delta}")
        self.kind, self.target, self.delta = kind, target, float(delta)
        self.diff = None

    def compute(self, pred):
        diff = pred - _target_array(self.target, pred)  # (N, K) or (N,)
        self.diff = diff
        if self.kind == "mse":
            per = diff * diff
        elif self.kind == "l1":
            per = np.abs(diff)
        else:
            size = np.abs(diff)
            per = np.where(size < self.delta, 0.5 * diff * diff, self.delta * (size - 0.5 * self.delta))
        return np.asarray(np.add.reduce(per, axis=None) / max(diff.size, 1), dtype=pred.dtype)

    def gradient(self, out_grad, node):
        diff = self.diff
        if self.kind == "mse":
            local = diff * 2.0
        elif self.kind == "l1":
            local = np.sign(diff)
        else:
            local = np.clip(diff, -self.delta, self.delta)
        scale = out_grad.realize_cached_data() / max(diff.size, 1)
        return Tensor.make_const((local * scale).astype(diff.dtype, copy=False))


def mse_loss(pred, target):
    return RegressionLoss("mse", target)(pred)


def l1_loss(pred, target):
    return RegressionLoss("l1", target)(pred)


def huber_loss(pred, target, delta=1.0):
    return RegressionLoss("huber", target, delta)(pred)


class SmoothedSoftmaxLoss(TensorOp):
    """Mean cross-entropy of logits (N, K) against (1 - s) onehot(y) + s / K (PyTorch's
    label_smoothing=s); s = 0 is the plain softmax loss."""

    def __init__(self, labels, smoothing: float):
        if not 0 <= smoothing <= 1:
            raise ValueError(f"label smoothing must be in [0, 1], got {smoothing}")
        self.labels, self.smoothing = labels, float(smoothing)
        self.probs = None

    def _target(self, shape, dtype) -> np.ndarray:
        n, k = shape
        target = np.full(shape, self.smoothing / k, dtype=dtype)  # (N, K)
        target[np.arange(n), self.labels] += 1.0 - self.smoothing
        return target

    def compute(self, logits):
        shifted = logits - logits.max(axis=1, keepdims=True)  # (N, K)
        sums = np.exp(shifted).sum(axis=1, keepdims=True)  # (N, 1)
        log_probs = shifted - np.log(sums)
        self.probs = np.exp(log_probs)
        total = -(self._target(logits.shape, logits.dtype) * log_probs).sum()
        return np.asarray(total / logits.shape[0], dtype=logits.dtype)

    def gradient(self, out_grad, node):
        n = self.probs.shape[0]
        grad = self.probs - self._target(self.probs.shape, self.probs.dtype)  # (N, K)
        grad *= out_grad.realize_cached_data() / n
        return Tensor.make_const(grad)


def smoothed_softmax_loss(logits, y, smoothing=0.0):
    given = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
    labels = given.reshape(-1).astype(np.intp, copy=False)
    n, k = logits.shape
    if labels.shape[0] != n or (n and (labels.max() >= k or labels.min() < 0)):
        raise ValueError(f"softmax loss needs {n} labels in [0, {k}); got shape {labels.shape}")
    return SmoothedSoftmaxLoss(labels, smoothing)(logits)
