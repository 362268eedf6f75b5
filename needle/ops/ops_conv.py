"""Convolution ops (course hw4 API): pad, flip, dilate, undilate and 2-D convolution (NHWC).

- pad(a, axes): zero padding, axes a (before, after) pair for EVERY axis (as NDArray.pad in hw4).
- flip(a, axes): reverse the order of entries along axes.
- dilate(a, axes, dilation): insert `dilation` zeros after every entry along axes
  (size n -> n * (1 + dilation), trailing zeros included, as in hw4); undilate is its inverse.
- conv(a, b, stride=1, padding=0): a (N, H, W, C_in) NHWC, b (K, K, C_in, C_out) ->
  (N, (H + 2p - K) // stride + 1, (W + 2p - K) // stride + 1, C_out). Cross-correlation, as in
  PyTorch and the course. An optional bias (C_out,) is fused in (nn.Conv uses it).

The convolution is im2col through a strided view plus one GEMM. Its two adjoints (input and weight
gradients) are ops of their own, and the three are each other's gradients, so gradients of any
order stay differentiable. Every op keeps its input dtype.
"""
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from ..autograd import ArrayGradientOp, TensorOp, is_grad_enabled
from .ops_fused import _column_sum, _rows

__all__ = ["Pad", "pad", "Crop", "crop", "Flip", "flip", "Dilate", "dilate", "UnDilate", "undilate",
           "Conv", "conv", "ConvInputGrad", "ConvWeightGrad"]


def _pairs(axes, ndim):
    """Validate hw4-style padding: one (before, after) pair of non-negative ints per axis."""
    pairs = tuple((int(before), int(after)) for before, after in axes)
    if len(pairs) != ndim or any(before < 0 or after < 0 for before, after in pairs):
        raise ValueError(f"pad needs {ndim} non-negative (before, after) pairs, got {axes}")
    return pairs


class Pad(TensorOp):
    """Zero padding by (before, after) per axis."""

    def __init__(self, axes):
        self.axes = tuple(tuple(pair) for pair in axes)

    def compute(self, a):
        return np.pad(a, _pairs(self.axes, a.ndim))

    def gradient(self, out_grad, node):
        return crop(out_grad, self.axes)


def pad(a, axes):
    return Pad(axes)(a)


class Crop(TensorOp):
    """Inverse of pad: drop (before, after) entries per axis."""

    def __init__(self, axes):
        self.axes = tuple(tuple(pair) for pair in axes)

    def compute(self, a):
        pairs = _pairs(self.axes, a.ndim)
        return a[tuple(slice(before, size - after) for (before, after), size in zip(pairs, a.shape))]

    def gradient(self, out_grad, node):
        return pad(out_grad, self.axes)


def crop(a, axes):
    return Crop(axes)(a)


def _axis_tuple(axes, ndim):
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    return tuple(int(axis) % ndim for axis in axes)


class Flip(TensorOp):
    """Reverse the entries along axes (None: all axes)."""

    def __init__(self, axes=None):
        self.axes = axes

    def compute(self, a):
        return np.flip(a, _axis_tuple(self.axes, a.ndim))

    def gradient(self, out_grad, node):
        return flip(out_grad, self.axes)


def flip(a, axes):
    return Flip(axes)(a)


def _dilated_slices(ndim, axes, dilation):
    step = dilation + 1
    return tuple(slice(None, None, step) if axis in axes else slice(None) for axis in range(ndim))


class Dilate(TensorOp):
    """Insert `dilation` zeros after each entry along axes."""

    def __init__(self, axes, dilation):
        self.axes = axes
        self.dilation = int(dilation)

    def compute(self, a):
        axes = _axis_tuple(self.axes, a.ndim)
        shape = tuple(size * (1 + self.dilation) if axis in axes else size
                      for axis, size in enumerate(a.shape))
        out = np.zeros(shape, dtype=a.dtype)
        out[_dilated_slices(a.ndim, axes, self.dilation)] = a
        return out

    def gradient(self, out_grad, node):
        return undilate(out_grad, self.axes, self.dilation)


def dilate(a, axes, dilation):
    return Dilate(axes, dilation)(a)


class UnDilate(TensorOp):
    """Keep every (1 + dilation)-th entry along axes (the inverse of dilate)."""

    def __init__(self, axes, dilation):
        self.axes = axes
        self.dilation = int(dilation)

    def compute(self, a):
        return a[_dilated_slices(a.ndim, _axis_tuple(self.axes, a.ndim), self.dilation)].copy()

    def gradient(self, out_grad, node):
        return dilate(out_grad, self.axes, self.dilation)


def undilate(a, axes, dilation):
    return UnDilate(axes, dilation)(a)


# ---- convolution: numpy kernels -------------------------------------------------------------

def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def _windows(padded, kernel, stride, out_h, out_w):
    """Strided view (N, Ho, Wo, K, K, C) of every receptive field of padded (N, Hp, Wp, C)."""
    s_n, s_h, s_w, s_c = padded.strides
    n, _, _, channels = padded.shape
    return as_strided(padded, (n, out_h, out_w, kernel, kernel, channels),
                      (s_n, s_h * stride, s_w * stride, s_h, s_w, s_c), writeable=False)


FEW_CHANNELS = 4  # below this, columns are gathered channel-major (see _im2col)


def _im2col(a, kernel, stride, padding):
    """a (N, H, W, C) -> columns (N*Ho*Wo, K*K*C) (one copy) and (Ho, Wo).

    With many channels the copy of the strided window view moves runs of C contiguous values.
    With few (an image's 1-3 channels) those runs are too short, so the columns are built
    transposed instead, one kernel offset at a time, moving whole image rows (~7x faster for
    C = 1); the returned matrix is then a transposed (Fortran-order) view, which BLAS takes as is.
    The copy is split over the batch's images (needle.parallel).
    """
    n, height, width, channels = a.shape
    out_h, out_w = _out_size(height, kernel, stride, padding), _out_size(width, kernel, stride, padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {kernel}x{kernel} kernel with padding {padding} does not fit a "
                         f"{height}x{width} input")
    padded = np.pad(a, ((0, 0), (padding, padding), (padding, padding), (0, 0))) if padding else a
    size = n * out_h * out_w * kernel * kernel * channels
    if channels >= FEW_CHANNELS:
        windows = _windows(padded, kernel, stride, out_h, out_w)  # (N, Ho, Wo, K, K, C) view
        cols = np.empty(windows.shape, dtype=a.dtype)

        def copy_images(part):
            cols[part] = windows[part]
        parallel.run(copy_images, n, size)
        return cols.reshape(n * out_h * out_w, -1), (out_h, out_w)
    cols_t = np.empty((kernel, kernel, channels, n, out_h, out_w), dtype=a.dtype)

    def copy_offsets(part):
        for i in range(kernel):
            for j in range(kernel):
                window = padded[part, i:i + stride * out_h:stride, j:j + stride * out_w:stride, :]
                cols_t[i, j, :, part] = window.transpose(3, 0, 1, 2)  # (C, n, Ho, Wo)
    parallel.run(copy_offsets, n, size)
    return cols_t.reshape(kernel * kernel * channels, -1).T, (out_h, out_w)


# OpenBLAS computes a GEMM's rows in blocks of its micro-kernel's height and a part's last, partial
# block in another summation order with some kernels (float32 on Haswell/Zen: blocks of 24 rows).
# A split GEMM gives one GEMM's exact bits when every part starts at a multiple of 24 (checked
# with the Haswell, Zen, SkylakeX and SandyBridge kernels, float32 and float64).
GEMM_ROW_ALIGN = 24


def _matmul_rows(x, w, bias=None):
    """x (M, K) @ w (K, P) (+ bias (P,)) -> (M, P), its rows split over needle's threads at
    multiples of GEMM_ROW_ALIGN (each output row is computed exactly as in one GEMM)."""
    out = np.empty((x.shape[0], w.shape[1]), dtype=np.result_type(x, w))

    def rows(part):
        np.matmul(x[part], w, out=out[part])
        if bias is not None:  # as wide rows: numpy's loop over rows of P = 16 costs twice as much
            into = out[part]
            row_wise = _rows(into)  # (inside a part, its run is not split again)
            row_wise.run(np.add, into, row_wise.tile(bias), into)
    parallel.run(rows, x.shape[0], x.size + out.size, GEMM_ROW_ALIGN)
    return out


def conv_forward(a, b, stride, padding, bias=None):
    """(N, H, W, C_in) * (K, K, C_in, C_out) -> (N, Ho, Wo, C_out), one GEMM."""
    kernel, _, c_in, c_out = b.shape
    if a.shape[3] != c_in:
        raise ValueError(f"conv input has {a.shape[3]} channels but the kernel expects {c_in}")
    cols, (out_h, out_w) = _im2col(a, kernel, stride, padding)  # (N*Ho*Wo, K*K*C_in)
    out = _matmul_rows(cols, b.reshape(-1, c_out), bias)  # (N*Ho*Wo, C_out)
    return out.reshape(a.shape[0], out_h, out_w, c_out), cols


def conv_input_grad(g, b, input_shape, stride, padding):
    """Adjoint of conv in its input: g (N, Ho, Wo, C_out) -> (N, H, W, C_in) (col2im).

    One GEMM per kernel offset, each added to the input positions that offset saw: the products
    come out contiguous, which measured ~2x faster than one GEMM into a (N*Ho*Wo, K*K*C_in)
    column matrix and a strided scatter from it (same FLOPs). Split over the batch's images."""
    n, height, width, c_in = input_shape
    kernel, c_out = b.shape[0], b.shape[3]
    _, out_h, out_w, _ = g.shape
    padded = np.zeros((n, height + 2 * padding, width + 2 * padding, c_in), dtype=np.result_type(g, b))

    def images(part):
        rows = g[part].reshape(-1, c_out)  # (n_part*Ho*Wo, C_out)
        target = padded[part]
        for i in range(kernel):  # K*K offsets, no pixel loop
            for j in range(kernel):
                product = (rows @ b[i, j].T).reshape(-1, out_h, out_w, c_in)
                target[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride, :] += product
    # parts of whole images whose GEMM rows (out_h * out_w per image) start at GEMM_ROW_ALIGN multiples
    parallel.run(images, n, kernel * kernel * g.size, GEMM_ROW_ALIGN // gcd(GEMM_ROW_ALIGN, out_h * out_w))
    if not padding:
        return padded
    cropped = np.empty(input_shape, dtype=padded.dtype)

    def crop(part):
        cropped[part] = padded[part, padding:padding + height, padding:padding + width, :]
    parallel.run(crop, n, cropped.size)
    return cropped


def conv_weight_grad(a, g, kernel, stride, padding, cols=None):
    """Adjoint of conv in its kernel: a (N, H, W, C_in), g (N, Ho, Wo, C_out) -> (K, K, C_in, C_out)."""
    if cols is None:
        cols, _ = _im2col(a, kernel, stride, padding)
    c_out = g.shape[3]
    # cols.T @ g, split over the rows of the product (whole dot products: no partial sums)
    return _matmul_rows(cols.T, g.reshape(-1, c_out)).reshape(kernel, kernel, a.shape[3], c_out)


# ---- convolution: ops -----------------------------------------------------------------------

class Conv(TensorOp):
    """2-D convolution of NHWC a with a (K, K, C_in, C_out) kernel (optional bias (C_out,))."""

    def __init__(self, stride=1, padding=0):
        self.stride = int(stride)
        self.padding = int(padding)
        if self.stride < 1 or self.padding < 0:
            raise ValueError(f"conv needs stride >= 1 and padding >= 0, got {stride}, {padding}")
        self.cols = None  # im2col of the forward input, reused by the weight gradient

    replayable = True  # compute depends only on its inputs and the geometry (needle.capture)

    def compute(self, a, b, bias=None):
        out, self.cols = conv_forward(a, b, self.stride, self.padding, bias)
        return out

    def gradient_arrays(self, out_grad, inputs, out, needs):
        """The first-order backward on arrays: backward's default (no graph) and needle.capture's
        replay. The bias gradient is one BLAS gemv (ones @ rows), ~10x faster than numpy's sum
        over three leading axes."""
        a, b = inputs[0], inputs[1]
        cols, self.cols = self.cols, None  # needed once: free it with the gradient
        grads = [conv_input_grad(out_grad, b, a.shape, self.stride, self.padding) if needs[0] else None,
                 conv_weight_grad(a, out_grad, b.shape[0], self.stride, self.padding, cols)
                 if needs[1] else None]
        if len(inputs) == 3:
            grads.append(_column_sum(out_grad.reshape(-1, out_grad.shape[-1])) if needs[2] else None)
        return grads

    def gradient(self, out_grad, node):
        if not is_grad_enabled():  # first order: the array kernels, wrapped as constants
            return ArrayGradientOp.gradient(self, out_grad, node)
        # create_graph=True: the adjoints as ops, differentiable again
        a, b = node.inputs[0], node.inputs[1]
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = ConvInputGrad(self.stride, self.padding, a.shape)(out_grad, b)
        cols, self.cols = self.cols, None  # needed once: free it with the gradient
        if b.requires_grad:
            grad_b = ConvWeightGrad(self.stride, self.padding, b.shape[0], cols)(a, out_grad)
        if len(node.inputs) == 2:
            return grad_a, grad_b
        bias = node.inputs[2]
        return grad_a, grad_b, (out_grad.sum((0, 1, 2)) if bias.requires_grad else None)


def conv(a, b, stride=1, padding=0):
    return Conv(stride, padding)(a, b)


class ConvInputGrad(TensorOp):
    """g (N, Ho, Wo, C_out), b (K, K, C_in, C_out) -> input gradient (N, H, W, C_in)."""

    def __init__(self, stride, padding, input_shape):
        self.stride, self.padding, self.input_shape = stride, padding, tuple(input_shape)

    def compute(self, g, b):
        return conv_input_grad(g, b, self.input_shape, self.stride, self.padding)

    def gradient(self, out_grad, node):
        g, b = node.inputs
        # bilinear in (g, b): d/dg is the forward conv of out_grad, d/db the weight adjoint
        grad_g = Conv(self.stride, self.padding)(out_grad, b) if g.requires_grad else None
        grad_b = (ConvWeightGrad(self.stride, self.padding, b.shape[0])(out_grad, g)
                  if b.requires_grad else None)
        return grad_g, grad_b


class ConvWeightGrad(TensorOp):
    """a (N, H, W, C_in), g (N, Ho, Wo, C_out) -> kernel gradient (K, K, C_in, C_out)."""

    def __init__(self, stride, padding, kernel, cols=None):
        self.stride, self.padding, self.kernel, self.cols = stride, padding, kernel, cols

    def compute(self, a, g):
        grad = conv_weight_grad(a, g, self.kernel, self.stride, self.padding, self.cols)
        self.cols = None  # the forward's columns are needed once
        return grad

    def gradient(self, out_grad, node):
        a, g = node.inputs
        grad_a = (ConvInputGrad(self.stride, self.padding, a.shape)(g, out_grad)
                  if a.requires_grad else None)
        grad_g = Conv(self.stride, self.padding)(a, out_grad) if g.requires_grad else None
        return grad_a, grad_g
