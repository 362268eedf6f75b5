"""Convolution ops (course hw4 API): pad, flip, dilate, undilate and 2-D convolution (NHWC).

- pad(a, axes): zero padding, axes a (before, after) pair for EVERY axis (as NDArray.pad in hw4).
- flip(a, axes): reverse the order of entries along axes.
- dilate(a, axes, dilation): insert `dilation` zeros after every entry along axes
  (size n -> n * (1 + dilation), trailing zeros included, as in hw4); undilate is its inverse.
- conv(a, b, stride=1, padding=0): a (N, H, W, C_in) NHWC, b (K, K, C_in, C_out) ->
  (N, (H + 2p - K) // stride + 1, (W + 2p - K) // stride + 1, C_out). Cross-correlation, as in
  PyTorch and the course. An optional bias (C_out,) is fused in (nn.Conv uses it).

The convolution is im2col through a strided view plus a GEMM, by blocks of whole images (see
BLOCK_BYTES). Its two adjoints (input and weight gradients) are ops of their own, and the three
are each other's gradients, so gradients of any order stay differentiable. Every op keeps its
input dtype.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from ..autograd import ArrayGradientOp, TensorOp, is_grad_enabled
from .ops_fused import _rows
from .ops_mathematic import _ones

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


def _pad_images(a, padding):
    """a (N, H, W, C) with `padding` zeros around each image's height and width (np.pad does the
    same ~3x slower: 420 against 150 us for the bench CNN's second conv input)."""
    if not padding:
        return a
    n, height, width, channels = a.shape
    padded = np.zeros((n, height + 2 * padding, width + 2 * padding, channels), dtype=a.dtype)
    padded[:, padding:padding + height, padding:padding + width, :] = a
    return padded


def _im2col(padded, kernel, stride, out_h, out_w):
    """padded images (n, Hp, Wp, C) -> columns (n*Ho*Wo, K*K*C) (one copy).

    With many channels the copy of the strided window view moves runs of C contiguous values.
    With few (an image's 1-3 channels) those runs are too short, so the columns are built
    transposed instead, moving whole image rows (~7x faster for C = 1); the returned matrix is
    then a transposed (Fortran-order) view, which BLAS takes as is. Either way it is one numpy
    call: on two threads, nine per-offset copies took 94 us a block against 40 us for one, each
    call's return waiting for the GIL the other thread holds.
    """
    n, channels = padded.shape[0], padded.shape[3]
    windows = _windows(padded, kernel, stride, out_h, out_w)  # (n, Ho, Wo, K, K, C) view
    if channels >= FEW_CHANNELS:
        return np.ascontiguousarray(windows).reshape(n * out_h * out_w, -1)
    cols_t = np.ascontiguousarray(windows.transpose(3, 4, 5, 0, 1, 2))  # (K, K, C, n, Ho, Wo)
    return cols_t.reshape(kernel * kernel * channels, -1).T


# Convolutions run by blocks of whole images: a block's column matrix is made, multiplied and
# dropped while it is in cache, instead of one (N*Ho*Wo, K*K*C_in) matrix, K*K times the size of
# the input, kept from the forward to the weight gradient for every conv layer (three 32-channel
# 3x3 convs on 32x32 images, batch 64: +180 MiB at the peak of a step before, +34 MiB now). The
# weight gradient makes its block's columns again. Blocks are fixed by the shapes alone, never by
# the thread count, and a block's GEMMs are the same calls whichever thread runs them, so results
# do not depend on the threads (OpenBLAS gives a row subset of a GEMM other last bits than the
# whole, so splitting one GEMM's rows by thread count would).
BLOCK_BYTES = 1 << 21  # a block's working set (its columns, or its gradient rows and products)
MIN_BLOCKS = 2  # at least this many blocks when the batch allows (parts for two threads). Fewer,
# bigger blocks pay (fewer GEMMs and numpy calls, each of which waits for the GIL on two threads):
# 8 cost ~9 % of a bench CNN step on two threads against 4 on the tenth session's host; on the
# thirteenth's, at least 4 cost ~4 % against 2, and the old 1 MiB, at least 4 (with BatchNorm's
# old blocks) ~13 %


def _image_blocks(n, bytes_per_image):
    """Slices of whole images covering range(n), as even as can be: at most about BLOCK_BYTES of
    work each, and at least MIN_BLOCKS of them when the batch allows."""
    most = max(1, BLOCK_BYTES // max(bytes_per_image, 1))  # images in a BLOCK_BYTES block
    count = min(n, max(-(-n // most), MIN_BLOCKS))
    bounds = [n * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def _conv_geometry(a_shape, b_shape, stride, padding):
    """(Ho, Wo) of the convolution, after checking that channels and kernel fit."""
    _, height, width, channels = a_shape
    kernel, _, c_in, _ = b_shape
    if channels != c_in:
        raise ValueError(f"conv input has {channels} channels but the kernel expects {c_in}")
    out_h, out_w = _out_size(height, kernel, stride, padding), _out_size(width, kernel, stride, padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"a {kernel}x{kernel} kernel with padding {padding} does not fit a "
                         f"{height}x{width} input")
    return out_h, out_w


def conv_forward(a, b, stride, padding, bias=None):
    """(N, H, W, C_in) * (K, K, C_in, C_out) -> (N, Ho, Wo, C_out), one GEMM per image block."""
    out_h, out_w = _conv_geometry(a.shape, b.shape, stride, padding)
    kernel, c_out, pixels = b.shape[0], b.shape[3], out_h * out_w
    weights = b.reshape(-1, c_out)  # (K*K*C_in, C_out)
    out = np.empty((a.shape[0] * pixels, c_out), dtype=np.result_type(a, b))  # (N*Ho*Wo, C_out)

    def block(_, images):
        cols = _im2col(_pad_images(a[images], padding), kernel, stride, out_h, out_w)  # (n_b*Ho*Wo, K*K*C_in)
        rows = out[images.start * pixels:images.stop * pixels]
        np.matmul(cols, weights, out=rows)
        if bias is not None:  # as wide rows: numpy's loop over rows of C_out = 16 costs twice as much
            row_wise = _rows(rows)
            wide = row_wise.wide(rows)
            np.add(wide, row_wise.tile(bias), out=wide)
    blocks = _image_blocks(a.shape[0], pixels * weights.shape[0] * a.itemsize)
    parallel.run_blocks(blocks, out.size * weights.shape[0], block)
    return out.reshape(a.shape[0], out_h, out_w, c_out)


def conv_input_grad(g, b, input_shape, stride, padding):
    """Adjoint of conv in its input: g (N, Ho, Wo, C_out) -> (N, H, W, C_in) (col2im).

    Per image block, one GEMM per kernel offset, each added to the input positions that offset saw:
    the products come out contiguous, which measured ~2x faster than one GEMM into a column matrix
    and a strided scatter from it (same FLOPs)."""
    n, height, width, c_in = input_shape
    kernel, c_out = b.shape[0], b.shape[3]
    _, out_h, out_w, _ = g.shape
    dtype = np.result_type(g, b)
    grad = np.empty(input_shape, dtype=dtype)
    padded_h, padded_w = height + 2 * padding, width + 2 * padding

    def block(_, images):
        rows = g[images].reshape(-1, c_out)  # (n_b*Ho*Wo, C_out)
        target = np.zeros((images.stop - images.start, padded_h, padded_w, c_in), dtype=dtype)
        for i in range(kernel):  # K*K offsets, no pixel loop
            for j in range(kernel):
                product = (rows @ b[i, j].T).reshape(-1, out_h, out_w, c_in)
                target[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride, :] += product
        grad[images] = target[:, padding:padding + height, padding:padding + width, :]
    bytes_per_image = (out_h * out_w * (c_out + c_in) + padded_h * padded_w * c_in) * g.itemsize
    parallel.run_blocks(_image_blocks(n, bytes_per_image), kernel * kernel * g.size, block)
    return grad


def conv_weight_grad(a, g, kernel, stride, padding):
    """Adjoint of conv in its kernel: a (N, H, W, C_in), g (N, Ho, Wo, C_out) -> (K, K, C_in, C_out)."""
    return conv_parameter_grads(a, g, kernel, stride, padding, bias=False)[0]


def conv_parameter_grads(a, g, kernel, stride, padding, bias):
    """(kernel adjoint (K, K, C_in, C_out), bias adjoint (C_out,) if bias else None).

    Per image block, its columns (made again: cheaper than keeping the forward's in memory) times
    its gradient rows, and for the bias the rows' column sums (one BLAS gemv, ~10x faster than
    numpy's sum over three leading axes) while they are in cache; the blocks' partial results are
    then added in block order."""
    _, out_h, out_w, c_out = g.shape
    pixels, depth = out_h * out_w, kernel * kernel * a.shape[3]
    rows = g.reshape(-1, c_out)  # (N*Ho*Wo, C_out)
    blocks = _image_blocks(a.shape[0], pixels * depth * a.itemsize)
    dtype = np.result_type(a, g)
    partials = np.empty((len(blocks), depth, c_out), dtype=dtype)  # (blocks, K*K*C_in, C_out)
    bias_partials = np.empty((len(blocks), c_out), dtype=dtype) if bias else None  # (blocks, C_out)

    def block(k, images):
        cols = _im2col(_pad_images(a[images], padding), kernel, stride, out_h, out_w)  # (n_b*Ho*Wo, K*K*C_in)
        block_rows = rows[images.start * pixels:images.stop * pixels]  # (n_b*Ho*Wo, C_out)
        # np.dot, not np.matmul: matmul keeps the GIL when the product has <= 500 elements (a
        # 1-channel 3x3 conv's 9 x C_out), so the blocks would run one at a time (same bits)
        np.dot(cols.T, block_rows, out=partials[k])
        if bias:
            np.dot(_ones(block_rows.shape[0], dtype), block_rows, out=bias_partials[k])
    parallel.run_blocks(blocks, rows.size * depth, block)
    kernel_grad = _block_sum(partials).reshape(kernel, kernel, a.shape[3], c_out)
    return kernel_grad, _block_sum(bias_partials) if bias else None


def _block_sum(partials):
    """The blocks' partial results (blocks, ...) added in block order."""
    return partials[0] if len(partials) == 1 else np.add.reduce(partials, axis=0)


# ---- convolution: ops -----------------------------------------------------------------------

class Conv(TensorOp):
    """2-D convolution of NHWC a with a (K, K, C_in, C_out) kernel (optional bias (C_out,))."""

    def __init__(self, stride=1, padding=0):
        self.stride = int(stride)
        self.padding = int(padding)
        if self.stride < 1 or self.padding < 0:
            raise ValueError(f"conv needs stride >= 1 and padding >= 0, got {stride}, {padding}")

    replayable = True  # compute depends only on its inputs and the geometry (needle.capture)

    def compute(self, a, b, bias=None):
        return conv_forward(a, b, self.stride, self.padding, bias)

    def gradient_arrays(self, out_grad, inputs, out, needs):
        """The first-order backward on arrays: backward's default (no graph) and needle.capture's
        replay."""
        a, b = inputs[0], inputs[1]
        needs_bias = len(inputs) == 3 and needs[2]
        grad_a = conv_input_grad(out_grad, b, a.shape, self.stride, self.padding) if needs[0] else None
        grad_b = grad_bias = None
        if needs[1] or needs_bias:
            grad_b, grad_bias = conv_parameter_grads(a, out_grad, b.shape[0], self.stride, self.padding,
                                                     needs_bias)
        grads = (grad_a, grad_b if needs[1] else None, grad_bias)
        return grads if len(inputs) == 3 else grads[:2]

    def gradient(self, out_grad, node):
        if not is_grad_enabled():  # first order: the array kernels, wrapped as constants
            return ArrayGradientOp.gradient(self, out_grad, node)
        # create_graph=True: the adjoints as ops, differentiable again
        a, b = node.inputs[0], node.inputs[1]
        grad_a = grad_b = None
        if a.requires_grad:
            grad_a = ConvInputGrad(self.stride, self.padding, a.shape)(out_grad, b)
        if b.requires_grad:
            grad_b = ConvWeightGrad(self.stride, self.padding, b.shape[0])(a, out_grad)
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

    def __init__(self, stride, padding, kernel):
        self.stride, self.padding, self.kernel = stride, padding, kernel

    def compute(self, a, g):
        return conv_weight_grad(a, g, self.kernel, self.stride, self.padding)

    def gradient(self, out_grad, node):
        a, g = node.inputs
        grad_a = (ConvInputGrad(self.stride, self.padding, a.shape)(g, out_grad)
                  if a.requires_grad else None)
        grad_g = Conv(self.stride, self.padding)(a, out_grad) if g.requires_grad else None
        return grad_a, grad_g
