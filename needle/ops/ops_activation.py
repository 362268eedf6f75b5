"""Activation ops beyond the course's ReLU/Tanh/Sigmoid: LeakyReLU, GELU (tanh approximation), SiLU.

Each keeps its input's dtype (scalars are Python floats, so NEP 50 never upcasts float32) and has a
numpy-computed local derivative: one graph node per activation, first-order gradients (like the
fused ops; the derivative is a constant w.r.t. the input).
"""
import math

import numpy as np

from ..autograd import Tensor, TensorOp, is_grad_enabled

__all__ = ["LeakyReLU", "leaky_relu", "GELU", "gelu", "SiLU", "silu"]

GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715


def _times_local(out_grad, local: np.ndarray):
    """out_grad * d(out)/d(in), as a graph node only when a graph is being recorded."""
    if not is_grad_enabled():
        return Tensor.make_const(out_grad.realize_cached_data() * local)
    return out_grad * Tensor.make_const(local)


class LeakyReLU(TensorOp):
    """a if a > 0 else negative_slope * a."""

    def __init__(self, negative_slope=0.01):
        self.negative_slope = float(negative_slope)

    def compute(self, a):
        return np.where(a > 0, a, a * self.negative_slope)

    def gradient(self, out_grad, node):
        a = node.inputs[0].realize_cached_data()
        local = np.where(a > 0, 1.0, self.negative_slope).astype(a.dtype)  # (...) same shape as a
        return _times_local(out_grad, local)


def leaky_relu(a, negative_slope=0.01):
    return LeakyReLU(negative_slope)(a)


class GELU(TensorOp):
    """0.5 a (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3))), PyTorch's approximate="tanh"."""

    def compute(self, a):
        inner = (a + a * a * a * GELU_K) * GELU_C
        return a * (np.tanh(inner) + 1.0) * 0.5

    def gradient(self, out_grad, node):
        a = node.inputs[0].realize_cached_data()
        t = np.tanh((a + a * a * a * GELU_K) * GELU_C)
        d_inner = (a * a * (3 * GELU_K) + 1.0) * GELU_C
        local = (t + 1.0) * 0.5 + a * (1.0 - t * t) * d_inner * 0.5
        return _times_local(out_grad, local)


def gelu(a):
    return GELU()(a)


class SiLU(TensorOp):
    """a * sigmoid(a) (a.k.a. swish)."""

    def compute(self, a):
        return a * ((np.tanh(a * 0.5) + 1.0) * 0.5)  # tanh form of sigmoid: no overflow

    def gradient(self, out_grad, node):
        a = node.inputs[0].realize_cached_data()
        s = (np.tanh(a * 0.5) + 1.0) * 0.5
        local = s + a * s * (1.0 - s)
        return _times_local(out_grad, local)


def silu(a):
    return SiLU()(a)
