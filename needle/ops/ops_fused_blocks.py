"""Fused ops for the blocks of a residual MLP, each one node with a numpy gradient (first-order only).

- random_dropout(x, p, relu=False): (relu then) inverted dropout with the mask drawn inside the op
  (np.random.rand, the course's stream), so the op can be replayed: a replayed step draws a new mask.
- add_relu(a, b): max(a + b, 0), the residual connection and the ReLU after it.
(BatchNorm with the ReLU and dropout after it is `batchnorm_train(..., relu=True, drop_p=p)`.)
"""
import numpy as np

from ..autograd import ArrayGradientOp
from .ops_fused import draw_dropout_mask
from .ops_mathematic import _zeros

__all__ = ["RandomDropout", "random_dropout", "AddReLU", "add_relu"]


class RandomDropout(ArrayGradientOp):
    """(max(x, 0) if relu else x) * mask, the mask drawn at each compute."""

    replayable = True

    def __init__(self, p, relu=False):
        self.p, self.relu = float(p), relu
        self.mask = None

    def compute(self, x):
        self.mask = draw_dropout_mask(x.shape, self.p, x.dtype)  # (...)
        if not self.relu:
            return x * self.mask
        out = np.maximum(x, _zeros(x.shape, x.dtype))
        out *= self.mask
        return out

    def gradient_reads(self):
        return ("out",)

    def gradient_arrays(self, g, inputs, out, needs):
        grad = g * self.mask
        if self.relu:  # out > 0 exactly where x > 0 and the mask keeps the entry
            np.multiply(grad, out > 0, out=grad)
        return (grad,)


def random_dropout(x, p, relu=False):
    return RandomDropout(p, relu)(x)


class AddReLU(ArrayGradientOp):
    """max(a + b, 0) (shapes equal)."""

    replayable = True

    def compute(self, a, b):
        out = a + b  # (N, D) fresh
        np.maximum(out, _zeros(out.shape, out.dtype), out=out)
        return out

    def gradient_reads(self):
        return ("out",)

    def gradient_arrays(self, g, inputs, out, needs):
        grad = np.multiply(g, out > 0, dtype=g.dtype)  # (N, D), the same adjoint for both inputs
        return grad if needs[0] else None, grad if needs[1] else None


def add_relu(a, b):
    return AddReLU()(a, b)
