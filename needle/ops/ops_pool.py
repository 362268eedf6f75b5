"""2-D pooling ops on NCHW inputs with PyTorch's semantics (no padding, floor mode).

- max_pool2d(a, kernel_size, stride=None): a (N, C, H, W) -> (N, C, (H - K) // S + 1, (W - K) // S + 1);
  the gradient goes to the first maximum of each window (row-major), as in PyTorch.
- avg_pool2d(a, kernel_size, stride=None): the window means; stride defaults to kernel_size.

Work is vectorised per kernel offset (K*K strided passes over the output), never per pixel. The
gradient is a linear op (scatter of the output gradient with fixed window weights) whose own
gradient is the matching gather, so pooling stays differentiable to any order. dtypes are kept.
"""
from dataclasses import dataclass

import numpy as np

from .. import parallel
from ..autograd import TensorOp

__all__ = ["MaxPool2d", "max_pool2d", "AvgPool2d", "avg_pool2d"]


CHANNELS_LAST = (0, 2, 3, 1)  # NCHW -> NHWC axes
CHANNELS_FIRST = (0, 3, 1, 2)  # NHWC -> NCHW axes


@dataclass(frozen=True)
class _Windows:
    """Pooling geometry: per kernel offset, the slices of the input it sees for every window.

    The work runs on the input's axes permuted into its memory order (`perm`): after a conv the
    NCHW tensor is a view of NHWC memory, and numpy is ~2x faster on such arrays when it sees
    them as the contiguous NHWC arrays they are.
    """

    offsets: list  # K*K index tuples into the permuted array, row-major over the kernel
    disjoint: bool  # stride >= kernel: every input position is in at most one window
    exact: bool  # disjoint and the windows tile the whole input (no cropped border)
    perm: tuple | None  # CHANNELS_LAST when the input's memory is NHWC, else None (as is)

    def view(self, array):
        """An (N, C, H, W) array in the working axis order."""
        return array if self.perm is None else array.transpose(self.perm)

    def unview(self, array):
        """A working-order array back as (N, C, H, W)."""
        return array if self.perm is None else array.transpose(CHANNELS_FIRST)


def _geometry(a, kernel, stride) -> _Windows:
    _, _, height, width = a.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    if kernel < 1 or stride < 1 or out_h < 1 or out_w < 1:
        raise ValueError(f"a {kernel}x{kernel} pooling window with stride {stride} does not fit a "
                         f"{height}x{width} input")
    channels_last = a.transpose(CHANNELS_LAST).flags.c_contiguous and not a.flags.c_contiguous
    lead = (slice(None),) if channels_last else (slice(None), slice(None))  # axes before H
    offsets = [(*lead, slice(i, i + stride * (out_h - 1) + 1, stride),
                slice(j, j + stride * (out_w - 1) + 1, stride))
               for i in range(kernel) for j in range(kernel)]
    exact = stride == kernel and height == out_h * kernel and width == out_w * kernel
    return _Windows(offsets, stride >= kernel, exact, CHANNELS_LAST if channels_last else None)


def _check_nchw(a):
    if a.ndim != 4:
        raise ValueError(f"2-D pooling needs an (N, C, H, W) input, got shape {a.shape}")


class _WindowScatter(TensorOp):
    """g (N, C, Ho, Wo) -> (N, C, H, W): sum over offsets of g * weight[offset] put at the offset.

    `like` is the pooled input (its shape and memory layout are the gradient's: element-wise
    numpy on mixed layouts is many times slower); weights are per-offset masks or scalars in the
    working axis order of `windows`."""

    def __init__(self, like, windows, weights):
        self.like, self.windows, self.weights = like, windows, weights

    def compute(self, g):
        windows = self.windows
        blank = np.empty if windows.exact else np.zeros  # exact: every entry is written
        out = blank(windows.view(self.like).shape, dtype=g.dtype)  # working order, contiguous
        g = windows.view(g)

        def scatter(part):  # the images in `part`
            into, grad = out[part], g[part]
            for where, weight in zip(windows.offsets, self.weights):
                weight = weight[part] if isinstance(weight, np.ndarray) else weight
                if windows.disjoint:  # no two windows share a position: write straight into place
                    np.multiply(grad, weight, out=into[where])
                else:
                    into[where] += grad * weight
        parallel.run(scatter, out.shape[0], out.size)
        return windows.unview(out)

    def gradient(self, out_grad, node):
        return _WindowGather(self.like, self.windows, self.weights)(out_grad)


class _WindowGather(TensorOp):
    """h (N, C, H, W) -> (N, C, Ho, Wo): sum over offsets of h[offset] * weight[offset]."""

    def __init__(self, like, windows, weights):
        self.like, self.windows, self.weights = like, windows, weights

    def compute(self, h):
        h, out = self.windows.view(h), None
        for where, weight in zip(self.windows.offsets, self.weights):
            term = h[where] * weight
            out = term if out is None else np.add(out, term, out=out)
        return self.windows.unview(out)

    def gradient(self, out_grad, node):
        return _WindowScatter(self.like, self.windows, self.weights)(out_grad)


class MaxPool2d(TensorOp):
    """Maximum over each kernel_size x kernel_size window, windows stride apart."""

    def __init__(self, kernel_size, stride=None):
        self.kernel = int(kernel_size)
        self.stride = self.kernel if stride is None else int(stride)
        self.windows = None
        self.picks = None  # the 2x2 fast path's picks for the gradient (see _pool_pairs)

    replayable = True  # compute depends only on its input and the window geometry (needle.capture)

    def compute(self, a):
        _check_nchw(a)
        windows = self.windows = _geometry(a, self.kernel, self.stride)
        a = windows.view(a)
        self.picks = None
        if self.kernel == 2 and windows.exact and a.flags.c_contiguous:
            out, self.picks = _pool_pairs(a, windows.perm is not None)
            return windows.unview(out)
        out = np.empty(a[windows.offsets[0]].shape, dtype=a.dtype)  # (N, C, Ho, Wo) in working order

        def pool(part):  # the images in `part`
            source, into = a[part], out[part]
            np.copyto(into, source[windows.offsets[0]])
            for where in windows.offsets[1:]:
                np.maximum(into, source[where], out=into)
        parallel.run(pool, a.shape[0], a.size)
        return windows.unview(out)

    def _scatter(self, a, out) -> "_WindowScatter":
        """The gradient's op: the output gradient put at each window's first maximum."""
        if self.picks is not None:
            masks = _masks_from_picks(*self.picks)
        else:
            masks = _first_max_masks(self.windows.view(a), self.windows.view(out), self.windows)
        return _WindowScatter(a, self.windows, masks)

    def gradient_arrays(self, out_grad, inputs, out, needs):
        """First-order backward on arrays (needle.capture's replay), the same kernels as gradient."""
        return [self._scatter(inputs[0], out).compute(out_grad)]

    def gradient(self, out_grad, node):
        return self._scatter(node.inputs[0].realize_cached_data(), node.realize_cached_data())(out_grad)


def _pool_pairs(a, channels_last):
    """Maxima of the 2x2 windows tiling a (working order, C-contiguous) and the picks locating
    each window's first maximum (row-major), as PyTorch's gradient wants it: within each row the
    right column counts only if greater than the left, then the bottom row's maximum only if
    greater than the top's. Two pairwise passes instead of K*K = 4 strided ones, and the gradient
    needs no search for the maxima (_masks_from_picks)."""
    if channels_last:  # (N, H, W, C)
        lead, height, width, channels = a.shape
        shape = (lead, height // 2, width // 2, channels)
    else:  # (N, C, H, W): the channels lead
        lead, height, width, channels = a.shape[0] * a.shape[1], a.shape[2], a.shape[3], 1
        shape = (a.shape[0], a.shape[1], height // 2, width // 2)
    pairs = a.reshape(lead, height // 2, 2, width // 2, 2, channels)  # (L, Ho, row, Wo, col, c)
    row_max = np.empty((lead, height // 2, 2, width // 2, channels), dtype=a.dtype)
    right_won = np.empty(row_max.shape, dtype=bool)  # (L, Ho, 2, Wo, c)
    out = np.empty((lead, height // 2, width // 2, channels), dtype=a.dtype)
    bottom_won = np.empty(out.shape, dtype=bool)  # (L, Ho, Wo, c)

    def pool(part):  # the leading entries (images, or image channels) in `part`
        pool_pairs_into(pairs[part], row_max[part], right_won[part], out[part], bottom_won[part])
    parallel.run(pool, lead, a.size)
    return out.reshape(shape), (right_won, bottom_won, shape)


def pool_pairs_into(pairs, row_max, right_won, out, bottom_won):
    """One part of _pool_pairs: pairs (L, Ho, 2, Wo, 2, c) -> out (L, Ho, Wo, c) and the picks."""
    left, right = pairs[:, :, :, :, 0], pairs[:, :, :, :, 1]
    np.maximum(left, right, out=row_max)
    np.greater(right, left, out=right_won)
    top, bottom = row_max[:, :, 0], row_max[:, :, 1]
    np.maximum(top, bottom, out=out)
    np.greater(bottom, top, out=bottom_won)


def _masks_from_picks(right_won, bottom_won, shape):
    """The four offsets' first-maximum masks (row-major over the window, working order)."""
    masks = []
    for row, in_row in ((~bottom_won, 0), (bottom_won, 1)):
        right = right_won[:, :, in_row]  # (L, Ho, Wo, c)
        masks += [(row & ~right).reshape(shape), (row & right).reshape(shape)]
    return masks


def _first_max_masks(a, out, windows):
    """Per offset, a bool mask of the windows whose FIRST maximum (row-major) sits there."""
    masks = [np.empty(out.shape, dtype=bool) for _ in windows.offsets]
    taken = np.zeros(out.shape, dtype=bool)

    def find(part):  # the images in `part`
        source, maxima, seen = a[part], out[part], taken[part]
        for where, mask in zip(windows.offsets, masks):
            hit = mask[part]
            np.equal(source[where], maxima, out=hit)
            np.greater(hit, seen, out=hit)  # hit and not seen before (on booleans)
            seen |= hit
    parallel.run(find, out.shape[0], a.size)
    return masks


def max_pool2d(a, kernel_size, stride=None):
    return MaxPool2d(kernel_size, stride)(a)


class AvgPool2d(TensorOp):
    """Mean over each kernel_size x kernel_size window, windows stride apart."""

    def __init__(self, kernel_size, stride=None):
        self.kernel = int(kernel_size)
        self.stride = self.kernel if stride is None else int(stride)
        self.windows = None

    replayable = True  # compute depends only on its input and the window geometry (needle.capture)

    def compute(self, a):
        _check_nchw(a)
        self.windows = _geometry(a, self.kernel, self.stride)
        return _WindowGather(a, self.windows, self._weights(a.dtype)).compute(a)

    def _weights(self, dtype):
        return [dtype.type(1.0 / self.kernel ** 2)] * len(self.windows.offsets)

    def _scatter(self, a) -> "_WindowScatter":
        """The gradient's op: the output gradient spread evenly over each window."""
        return _WindowScatter(a, self.windows, self._weights(a.dtype))

    def gradient_arrays(self, out_grad, inputs, out, needs):
        """First-order backward on arrays (needle.capture's replay), the same kernel as gradient."""
        return [self._scatter(inputs[0]).compute(out_grad)]

    def gradient(self, out_grad, node):
        return self._scatter(node.inputs[0].realize_cached_data())(out_grad)


def avg_pool2d(a, kernel_size, stride=None):
    return AvgPool2d(kernel_size, stride)(a)
