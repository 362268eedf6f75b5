"""LogSoftmax and LogSumExp, numerically stable by max-shift (course needle API)."""
import numpy as np

from ..autograd import Tensor, TensorOp
from .ops_mathematic import (
    _keepdims_shape, _normalize_axes, broadcast_to, exp, reshape, summation,
)

__all__ = ["LogSoftmax", "logsoftmax", "LogSumExp", "logsumexp"]


def _finite_max(z, axes):
    """max over axes with keepdims; rows that are all -inf (or inf) shift by 0 instead of producing nan."""
    z_max = np.max(z, axis=axes, keepdims=True)
    if not np.all(np.isfinite(z_max)):
        z_max = np.where(np.isfinite(z_max), z_max, 0).astype(z.dtype, copy=False)
    return z_max


class LogSoftmax(TensorOp):
    """z - logsumexp(z) over the last axis."""

    replayable = True

    def compute(self, z):
        shifted = z - _finite_max(z, -1)  # (..., K) new array, safe to modify in place
        lse = np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))  # (..., 1)
        shifted -= lse
        return shifted

    def gradient(self, out_grad, node):
        # d/dz = g - softmax(z) * sum(g): softmax = exp(logsoftmax) is stable since logsoftmax <= 0
        shape = node.shape
        g_sum = broadcast_to(reshape(summation(out_grad, -1), shape[:-1] + (1,)), shape)
        return out_grad - exp(node) * g_sum


def logsoftmax(a):
    return LogSoftmax()(a)


class LogSumExp(TensorOp):
    """log(sum(exp(z), axes)) with the reduced axes dropped; axes None, an int or a tuple."""

    replayable = True

    def __init__(self, axes=None):
        self.axes = axes

    def compute(self, z):
        self.axes = _normalize_axes(self.axes, z.ndim)
        z_max = _finite_max(z, self.axes)  # keepdims shape
        lse = np.log(np.sum(np.exp(z - z_max), axis=self.axes, keepdims=True))
        lse += z_max
        return lse.reshape(_dropped_shape(z.shape, self.axes))

    def gradient(self, out_grad, node):
        # gradient is softmax over axes; computed from the input with a constant max-shift (not from the
        # rounded lse) so it stays exact around 1e10, and built from ops so it is differentiable again
        z = node.inputs[0]
        kept = _keepdims_shape(z.shape, self.axes)
        z_max = Tensor.make_const(_finite_max(z.realize_cached_data(), self.axes))
        e = exp(z - broadcast_to(z_max, z.shape))
        softmax = e / broadcast_to(reshape(summation(e, self.axes), kept), z.shape)
        return broadcast_to(reshape(out_grad, kept), z.shape) * softmax


def _dropped_shape(shape, axes):
    """Shape after reducing over axes (None reduces to a scalar)."""
    if axes is None:
        return ()
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def logsumexp(a, axes=None):
    return LogSumExp(axes=axes)(a)
