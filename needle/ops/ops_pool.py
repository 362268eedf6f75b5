"""2-D pooling ops on NCHW inputs with PyTorch's semantics (no padding, floor mode).

- max_pool2d(a, kernel_size, stride=None): a (N, C, H, W) -> (N, C, (H - K) // S + 1, (W - K) // S + 1);
  the gradient goes to the first maximum of each window (row-major), as in PyTorch.
- avg_pool2d(a, kernel_size, stride=None): the window means; stride defaults to kernel_size.

Work is vectorised per kernel offset (K*K strided passes over the output), never per pixel. The
gradient is a linear op (scatter of the output gradient with fixed window weights) whose own
gradient is the matching gather, so pooling stays differentiable to any order. dtypes are kept.
"""
import numpy as np

from ..autograd import TensorOp

__all__ = ["MaxPool2d", "max_pool2d", "AvgPool2d", "avg_pool2d"]


def _geometry(shape, kernel, stride):
    """(Ho, Wo) and the list of (i, j, window slices) of every kernel offset."""
    _, _, height, width = shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    if kernel < 1 or stride < 1 or out_h < 1 or out_w < 1:
        raise ValueError(f"a {kernel}x{kernel} pooling window with stride {stride} does not fit a "
                         f"{height}x{width} input")
    offsets = [(..., slice(i, i + stride * (out_h - 1) + 1, stride),
                slice(j, j + stride * (out_w - 1) + 1, stride))
               for i in range(kernel) for j in range(kernel)]
    return (out_h, out_w), offsets


def _check_nchw(a):
    if a.ndim != 4:
        raise ValueError(f"2-D pooling needs an (N, C, H, W) input, got shape {a.shape}")


class _WindowScatter(TensorOp):
    """g (N, C, Ho, Wo) -> (N, C, H, W): sum over offsets of g * weight[offset] put at the offset.

    `like` is the pooled input: the gradient gets its memory layout (an NCHW view of NHWC memory
    after a conv), because element-wise numpy on mixed layouts is many times slower."""

    def __init__(self, like, offsets, weights):
        self.like, self.offsets, self.weights = like, offsets, weights

    def compute(self, g):
        out = np.zeros_like(self.like, dtype=g.dtype)  # (N, C, H, W) in like's layout
        for where, weight in zip(self.offsets, self.weights):
            out[where] += g * weight
        return out

    def gradient(self, out_grad, node):
        return _WindowGather(self.like, self.offsets, self.weights)(out_grad)


class _WindowGather(TensorOp):
    """h (N, C, H, W) -> (N, C, Ho, Wo): sum over offsets of h[offset] * weight[offset]."""

    def __init__(self, like, offsets, weights):
        self.like, self.offsets, self.weights = like, offsets, weights

    def compute(self, h):
        out = None
        for where, weight in zip(self.offsets, self.weights):
            term = h[where] * weight
            out = term if out is None else np.add(out, term, out=out)
        return out

    def gradient(self, out_grad, node):
        return _WindowScatter(self.like, self.offsets, self.weights)(out_grad)


class MaxPool2d(TensorOp):
    """Maximum over each kernel_size x kernel_size window, windows stride apart."""

    def __init__(self, kernel_size, stride=None):
        self.kernel = int(kernel_size)
        self.stride = self.kernel if stride is None else int(stride)
        self.offsets = None

    def compute(self, a):
        _check_nchw(a)
        _, self.offsets = _geometry(a.shape, self.kernel, self.stride)
        out = a[self.offsets[0]].copy(order="K")  # (N, C, Ho, Wo), keeping a's memory layout
        for where in self.offsets[1:]:
            np.maximum(out, a[where], out=out)
        return out

    def gradient(self, out_grad, node):
        a, out = node.inputs[0].realize_cached_data(), node.realize_cached_data()
        masks, taken = [], np.zeros(out.shape, dtype=bool)
        for where in self.offsets:  # the first maximum of each window takes the gradient
            hit = a[where] == out
            hit &= ~taken
            taken |= hit
            masks.append(hit.astype(out.dtype))
        return _WindowScatter(a, self.offsets, masks)(out_grad)


def max_pool2d(a, kernel_size, stride=None):
    return MaxPool2d(kernel_size, stride)(a)


class AvgPool2d(TensorOp):
    """Mean over each kernel_size x kernel_size window, windows stride apart."""

    def __init__(self, kernel_size, stride=None):
        self.kernel = int(kernel_size)
        self.stride = self.kernel if stride is None else int(stride)
        self.offsets = None

    def compute(self, a):
        _check_nchw(a)
        _, self.offsets = _geometry(a.shape, self.kernel, self.stride)
        return _WindowGather(a, self.offsets, self._weights(a.dtype)).compute(a)

    def _weights(self, dtype):
        return [dtype.type(1.0 / self.kernel ** 2)] * len(self.offsets)

    def gradient(self, out_grad, node):
        a = node.inputs[0].realize_cached_data()
        return _WindowScatter(a, self.offsets, self._weights(a.dtype))(out_grad)


def avg_pool2d(a, kernel_size, stride=None):
    return AvgPool2d(kernel_size, stride)(a)
