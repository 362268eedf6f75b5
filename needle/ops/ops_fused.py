"""Fused ops for speed: one TensorOp (one graph node, hand-derived gradient) instead of many small ones.

Functions (all take/return needle Tensors; shapes as in the course's nn modules):
- linear(x, weight, bias=None): x (N, in) @ weight (in, out) + bias (1, out) -> (N, out).
  Leading batch axes of x are allowed: (..., in) -> (..., out).
- batchnorm_train(x, weight, bias, eps=1e-5): x (N, D); weight, bias (1, D) or (D,); batch mean and
  biased variance -> (N, D).
- batchnorm_train_stats(x, weight, bias, eps=1e-5) -> (out Tensor, mean np.ndarray (D,), var np.ndarray (D,)):
  the same op, also returning the batch statistics the module needs for its running averages (no second
  pass). The op instance also keeps them: `BatchNormTrain.mean`, `.var` after compute.
- layernorm(x, weight, bias, eps=1e-5): normalise over the last axis, (..., D) -> (..., D).
- softmax_loss(logits, y): logits (N, K), y integer labels (N,) (numpy array or Tensor) -> scalar mean
  cross-entropy; differentiable w.r.t. logits only, gradient (softmax - onehot) / N.
- dropout(x, mask_scale): x * mask_scale, mask_scale a precomputed numpy array (already scaled 1/(1-p)).
- relu_dropout(x, mask_scale): relu(x) * mask_scale in one node.

Each op caches in its instance what its gradient needs (xhat, inv_std, probs, ...), so the cache lives
exactly as long as the graph node. Gradients are computed in numpy and returned as constant Tensors:
fused ops are first-order only (a gradient of a gradient through them is NOT supported; use the
composite ops if you need that). A gradient is None for inputs that do not require grad (work skipped).
"""
from functools import lru_cache, partial

import numpy as np

from .. import parallel
from ..autograd import ArrayGradientOp, Tensor, TensorOp
from . import ops_batchnorm_blocks as blocked
from .ops_mathematic import _ones, _zeros

__all__ = [
    "Linear", "linear", "BatchNormTrain", "batchnorm_train", "batchnorm_train_stats",
    "LayerNorm", "layernorm", "SoftmaxLoss", "softmax_loss", "Dropout", "dropout",
    "ReLUDropout", "relu_dropout", "draw_dropout_mask",
]


def _const(array):
    return Tensor.make_const(array)


@lru_cache(maxsize=32)
def _averaging_vector(n, dtype):
    """A read-only vector of n entries 1/n (cached), so a column mean is one BLAS call.

    Column sums and means as BLAS products (ones @ a, average @ a) are several times faster than
    ndarray.sum(axis=0) at N, D ~ 100 (numpy's axis-0 reduction is a strided loop); same rounding
    class, since numpy does not sum pairwise along axis 0 either.
    """
    weights = np.full(n, 1.0 / n, dtype=dtype)
    weights.flags.writeable = False
    return weights


def _mask_array(mask_scale, dtype):
    """Mask as an array of the data dtype (a float64 mask would upcast float32 activations)."""
    mask = mask_scale.numpy() if isinstance(mask_scale, Tensor) else np.asarray(mask_scale)
    return mask.astype(dtype, copy=False)


class Linear(ArrayGradientOp):
    """x @ weight (+ bias) as one node."""

    replayable = True
    writes_gradients_into = (1, 2)  # inputs whose gradient gradient_arrays can write into `outs`

    def compute(self, x, weight, bias=None):
        out = x @ weight  # (..., out) fresh array
        if bias is not None:
            out += bias  # (1, out) broadcast, in place
        return out

    def gradient_reads(self):
        return 0, 1, 2  # not the output

    def gradient_arrays(self, g, inputs, out, needs, outs=None):
        """outs: optional arrays of the gradients' dtype to write the weight and bias gradients into
        (needle.capture), None where not given."""
        x, w = inputs[0], inputs[1]  # (..., in), (in, out)
        if g.ndim != 2:  # leading batch axes: flatten them for the weight and bias gradients
            in_features, out_features = w.shape
            g2d, x2d = g.reshape(-1, out_features), x.reshape(-1, in_features)  # (N, out), (N, in)
        else:
            g2d, x2d = g, x
        if outs is None:
            outs = _NO_OUTS
        grad_x = g @ w.T if needs[0] else None  # (..., in)
        grad_w = np.matmul(x2d.T, g2d, outs[1]) if needs[1] else None  # (in, out); outs positional: cheaper
        if len(inputs) == 2:
            return grad_x, grad_w
        if not needs[2]:
            return grad_x, grad_w, None
        ones, dest = _ones(g2d.shape[0], g2d.dtype), outs[2]  # (N,)
        if dest is None:
            return grad_x, grad_w, (ones @ g2d).reshape(inputs[2].shape)
        np.matmul(ones, g2d, dest.reshape(-1))
        return grad_x, grad_w, dest


_NO_OUTS = (None, None, None)  # gradient_arrays' outs when none were given


def linear(x, weight, bias=None):
    if bias is None:
        return Linear()(x, weight)
    return Linear()(x, weight, bias)


def draw_dropout_mask(shape, p, dtype):
    """Inverted-dropout multiplier of `dtype`: keep with probability 1-p (course: randb), scaled 1/(1-p).

    Draws np.random.rand(*shape) from the global generator, the course's random stream.
    """
    keep = np.random.rand(*shape) <= 1 - p  # (...) bool
    return np.multiply(keep, np.asarray(1.0 / (1 - p), dtype=dtype), dtype=dtype)  # one pass, no cast copy


class BatchNormTrain(ArrayGradientOp):
    """Batch normalisation with batch statistics over axis 0 (training mode), optionally fused with
    the ReLU and the dropout that follow it in a block (one node, one pass fewer each way).

    relu: apply max(., 0); drop_p: then inverted dropout with a mask drawn here (the course's
    stream, at the point the Dropout module would draw it); on_stats(mean, var): called with the
    batch statistics after each compute (BatchNorm1d updates its running averages there, so a
    replayed step updates them too).
    Keeps the centred input and weight/std rather than xhat: out = xc * (weight * inv_std) + bias
    and the gradient both use xc directly, which saves a full-size pass in each direction.
    Small arrays of wide rows (an MLP's) take whole-array passes, written out in compute and
    gradient_arrays (fewer Python calls: an MLPResNet step makes six of each). All others (BatchNorm2d's
    narrow or big rows, see _Rows) take the block passes of ops_batchnorm_blocks: statistics and
    column sums by blocks in cache, on every thread.
    """

    replayable = True
    writes_gradients_into = (1, 2)  # weight and bias: see Linear

    def __init__(self, eps=1e-5, relu=False, drop_p=None, on_stats=None):
        self.eps = float(eps)
        self.relu, self.drop_p, self.on_stats = relu, drop_p, on_stats
        self.mean = self.var = self.inv_std = self.centred = self.scale = self.mask = None

    def compute(self, x, weight, bias):
        # small arrays whole; big or narrow-rowed ones by blocks (ops_batchnorm_blocks)
        rows = None if x.size < ALWAYS_WHOLE else _rows(x)
        if rows is None or rows.whole:
            average = _averaging_vector(x.shape[0], x.dtype)  # (N,) of 1/N: column means as BLAS products
            mean = average @ x  # (D,)
            centred = x - mean  # (N, D)
            var = average @ (centred * centred)  # (D,)
        else:
            (mean, var), centred = blocked.statistics(rows, x), None  # the backward recomputes it
        inv_std = 1.0 / np.sqrt(var + self.eps)  # (D,)
        scale = weight.reshape(-1) * inv_std  # (D,) weight / std, reused by the gradient
        if self.drop_p is not None:  # drawn whole, before any split: the course's random stream
            self.mask = draw_dropout_mask(x.shape, self.drop_p, x.dtype)  # (N, D)
        if centred is None:
            out = rows.empty()
            blocked.normalise(rows, x, mean, scale, bias.reshape(-1), self.relu, self.mask, out)
        else:
            out = centred * scale  # (N, D)
            out += bias.reshape(-1)
            if self.relu:  # against a cached zeros array: ~2.5x faster than against the scalar 0 here
                np.maximum(out, _zeros(out.shape, out.dtype), out=out)
            if self.mask is not None:
                out *= self.mask
        self.mean, self.var, self.inv_std, self.centred, self.scale = mean, var, inv_std, centred, scale
        if self.on_stats is not None:
            self.on_stats(mean, var)
        return out

    def gradient_reads(self):
        reads = (1, 2) if self.centred is not None else (0, 1, 2)  # big arrays: centred from x
        return reads + ("out",) if self.relu else reads

    def gradient_arrays(self, g, inputs, out, needs, outs=None):
        """outs: optional arrays of the gradients' dtype for the weight and bias gradients (see Linear)."""
        if self.centred is None:  # big arrays: by blocks, column sums included
            return self._gradient_by_blocks(g, inputs, out, needs, outs)
        own = self.mask is not None  # whether g (through the mask and the relu) is this op's array
        if own:
            g = g * self.mask  # (N, D)
        if self.relu:  # out > 0 exactly where the relu (and the mask) passed
            g = np.multiply(g, out > 0, g) if own else np.multiply(g, out > 0, dtype=g.dtype)
            own = True
        products = g * self.centred  # (N, D)
        ones = _ones(g.shape[0], g.dtype)
        grad_bias, centred_sum = ones @ g, ones @ products  # (D,) column sums as BLAS products
        weight_grad, bias_grad, factors = _gradients_from_sums(self, centred_sum, grad_bias, inputs,
                                                               needs, outs, g.shape[0])
        if factors is None:
            return None, weight_grad, bias_grad
        centred_factor, shift = factors
        # grad_x = g' * scale - centred * centred_factor - shift, in g' when it is this op's own
        grad_x = np.multiply(g, self.scale, g) if own else g * self.scale
        grad_x -= np.multiply(self.centred, centred_factor, products)
        grad_x -= shift
        return grad_x, weight_grad, bias_grad

    def _gradient_by_blocks(self, g, inputs, out, needs, outs):
        x = inputs[0]
        rows = _rows(g)
        masked = np.empty(g.shape, g.dtype) if self.drop_p is not None or self.relu else None  # (N, D)
        grad_bias, centred_sum = blocked.gradient_sums(rows, g, x, self.mean, self.mask,
                                                       out if self.relu else None, masked)
        g = g if masked is None else masked  # (N, D) through the mask and the relu
        weight_grad, bias_grad, factors = _gradients_from_sums(self, centred_sum, grad_bias, inputs,
                                                               needs, outs, g.shape[0])
        if factors is None:
            return None, weight_grad, bias_grad
        centred_factor, shift = factors
        grad_x = rows.empty() if masked is None else masked  # masked is this op's own: grad_x in place
        blocked.input_gradient(rows, g, x, self.mean, self.scale, centred_factor, shift, grad_x)
        return grad_x, weight_grad, bias_grad


def _gradients_from_sums(op, centred_sum, grad_bias, inputs, needs, outs, n):
    """BatchNorm's gradients from its column sums sum(g' * (x - mean)) and sum(g') (D,) and op's
    inv_std and scale (D,), over n rows: (the weight's gradient, the bias's gradient, factors).
    The parameter gradients are None when not needed, and written into outs' arrays (of the
    gradients' dtype) where given (needle.capture). factors = (centred_factor, shift), (D,) each,
    of the input gradient, or None when the input needs none:
    dx = k * (g' - mean(g') - xhat * mean(g' * xhat)) = g' * scale - (x - mean) * centred_factor - shift,
    with k = weight * inv_std = scale and xhat = (x - mean) * inv_std: small factors first."""
    _, weight, bias = inputs
    dest_w, dest_b = _NO_OUTS[1:] if outs is None else outs[1:3]
    grad_weight = np.multiply(centred_sum, op.inv_std,
                              out=None if dest_w is None else dest_w.reshape(-1))  # (D,) = sum(g' * xhat)
    if dest_b is not None:
        dest_b.reshape(-1)[...] = grad_bias
    weight_grad = (grad_weight.reshape(weight.shape) if dest_w is None else dest_w) if needs[1] else None
    bias_grad = (grad_bias.reshape(bias.shape) if dest_b is None else dest_b) if needs[2] else None
    if not needs[0]:
        return weight_grad, bias_grad, None
    k_over_n = op.scale * (1.0 / n)  # (D,)
    return weight_grad, bias_grad, (k_over_n * op.inv_std * grad_weight, k_over_n * grad_bias)


@lru_cache(maxsize=64)
def _row_group(rows, width):
    """How many rows of `width` to view as one row of about WIDE_ROW elements (a divisor of rows);
    1 for rows that are wide already or arrays so small that the extra calls would cost more."""
    if width >= NARROW_ROW or rows * width < ALWAYS_WHOLE:
        return 1
    want = WIDE_ROW // width
    return next(k for k in range(min(want, rows), 0, -1) if rows % k == 0)


NARROW_ROW = 64  # elements: below this numpy's per-row broadcast overhead dominates (BatchNorm2d channels)
ALWAYS_WHOLE = 1 << 16  # elements: smaller arrays have k = 1 and stay under parallel.MIN_ELEMENTS
assert ALWAYS_WHOLE <= parallel.MIN_ELEMENTS
WIDE_ROW = 1024  # elements per row of the wide view


def _tile_row(v, k):
    """(D,) -> (k * D,): v k times over, as np.tile(v, k) (a few times faster: np.tile's Python
    costs more than the copy for the short vectors of a step)."""
    return np.repeat(v[np.newaxis], k, axis=0).reshape(-1)


def _rows(like):
    """The _Rows of an array like `like` (one per geometry: made once)."""
    return _rows_of(like.shape, like.dtype, like.flags.c_contiguous)


@lru_cache(maxsize=64)
def _rows_of(shape, dtype, c_contiguous):
    return _Rows(shape, dtype, _row_group(*shape) if c_contiguous else 1)


class _Rows:
    """The geometry of (N, D) arrays for row-broadcast arithmetic with (D,) vectors.

    With D small (BatchNorm2d's channels) numpy runs its inner loop once per D-wide row; viewing k
    contiguous rows as one and tiling the vectors k times gives the same element-wise results with
    ~1,000-wide inner loops (about twice as fast). k = 1 for wide rows, small arrays and arrays
    that are not C-contiguous. `whole`: small arrays of wide rows (an MLP's), which BatchNormTrain
    takes in whole-array passes; all others take its block passes (ops_batchnorm_blocks).
    """

    def __init__(self, shape, dtype, k):
        self.shape, self.dtype, self.k = shape, dtype, k
        self.wide_shape = (shape[0] // k, shape[1] * k)
        self.size = shape[0] * shape[1]
        self.whole = k == 1 and self.size < parallel.MIN_ELEMENTS
        self.empty = partial(np.empty, shape, dtype)  # a fresh C-contiguous (N, D) array
        # blocks that fit a core's cache, on needle's threads; None: one block (a small array)
        self.blocks = (blocked.row_blocks(*self.wide_shape) if self.size >= parallel.MIN_ELEMENTS
                       else None)

    def tile(self, v):
        """A (D,) vector as a row of the wide view."""
        return v if self.k == 1 else _tile_row(v, self.k)

    def wide(self, a):
        """The wide view of an (N, D) array like this geometry's."""
        if self.k == 1:
            return a
        wide = a.view()
        wide.shape = self.wide_shape  # raises rather than copy: a write must land in a
        return wide


def batchnorm_train(x, weight, bias, eps=1e-5, relu=False, drop_p=None, on_stats=None):
    return BatchNormTrain(eps, relu, drop_p, on_stats)(x, weight, bias)


def batchnorm_train_stats(x, weight, bias, eps=1e-5):
    """batchnorm_train plus the batch mean and biased variance, numpy arrays of shape (D,)."""
    op = BatchNormTrain(eps)
    out = op(x, weight, bias)
    return out, op.mean, op.var


class LayerNorm(ArrayGradientOp):
    """Normalise over the last axis, then scale and shift."""

    replayable = True

    def __init__(self, eps=1e-5):
        self.eps = float(eps)
        self.inv_std = self.xhat = None

    def compute(self, x, weight, bias):
        xhat = x - x.sum(axis=-1, keepdims=True) * (1.0 / x.shape[-1])  # (..., D) fresh, normalised below
        var = np.einsum("...d,...d->...", xhat, xhat)[..., None] / x.shape[-1]  # (..., 1)
        self.inv_std = 1.0 / np.sqrt(var + self.eps)  # (..., 1)
        xhat *= self.inv_std
        self.xhat = xhat
        out = xhat * weight.reshape(-1)
        out += bias.reshape(-1)
        return out

    def gradient_arrays(self, g, inputs, out, needs):
        weight, bias = inputs[1], inputs[2]  # g: (..., D)
        dim = g.shape[-1]
        grad_x = grad_weight = grad_bias = None
        if needs[0]:
            dxhat = g * weight.reshape(-1)  # (..., D)
            mean_dxhat = dxhat.sum(axis=-1, keepdims=True) * (1.0 / dim)  # (..., 1)
            mean_dxhat_xhat = np.einsum("...d,...d->...", dxhat, self.xhat)[..., None] / dim
            dxhat -= mean_dxhat
            dxhat -= self.xhat * mean_dxhat_xhat
            dxhat *= self.inv_std
            grad_x = dxhat
        if needs[1]:
            grad_weight = np.einsum("nd,nd->d", g.reshape(-1, dim), self.xhat.reshape(-1, dim)).reshape(weight.shape)
        if needs[2]:
            grad_bias = g.reshape(-1, dim).sum(axis=0).reshape(bias.shape)
        return grad_x, grad_weight, grad_bias


def layernorm(x, weight, bias, eps=1e-5):
    return LayerNorm(eps)(x, weight, bias)


class SoftmaxLoss(TensorOp):
    """Mean softmax cross-entropy of logits (N, K) against integer labels held by the op."""

    def __init__(self, labels):
        self.labels = labels  # (N,) intp
        self.probs = self.rows = None

    def compute(self, logits):
        n = logits.shape[0]
        rows = np.arange(n)
        # ufunc.reduce directly: ndarray.max/sum add a Python wrapper call each (small arrays here)
        shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)  # (N, K)
        probs = np.exp(shifted)
        sums = np.add.reduce(probs, axis=1, keepdims=True)  # (N, 1)
        total = np.add.reduce(np.log(sums), axis=None) - np.add.reduce(shifted[rows, self.labels])
        probs /= sums
        self.probs, self.rows = probs, rows
        return np.asarray(total / n, dtype=logits.dtype)

    def gradient(self, out_grad, node):
        grad = self.probs.copy()  # (N, K); copy so a second backward still sees the probabilities
        grad[self.rows, self.labels] -= 1
        grad *= out_grad.realize_cached_data() / grad.shape[0]
        return _const(grad)


def softmax_loss(logits, y):
    given = y.numpy() if isinstance(y, Tensor) else np.asarray(y)
    labels = given.reshape(-1).astype(np.intp, copy=False)
    n, k = logits.shape
    # fancy indexing would silently wrap negative labels, so check the range (cheap: N values);
    # unsigned labels (the DataLoader's usual uint8) cannot be negative
    # (ufunc.reduce directly: ndarray.max/min add a Python wrapper call each)
    if labels.shape[0] != n or (n and (np.maximum.reduce(labels) >= k
                                       or (given.dtype.kind != "u" and np.minimum.reduce(labels) < 0))):
        raise ValueError(f"softmax_loss needs {n} labels in [0, {k}); got shape {labels.shape}, "
                         f"range [{labels.min() if n else None}, {labels.max() if n else None}]")
    return SoftmaxLoss(labels)(logits)


class Dropout(TensorOp):
    """x * mask, the mask a precomputed (scaled) numpy array."""

    def __init__(self, mask):
        self.mask = mask

    def compute(self, x):
        self.mask = _mask_array(self.mask, x.dtype)  # converted once, reused by the gradient
        return x * self.mask

    def gradient(self, out_grad, node):
        return _const(out_grad.realize_cached_data() * _mask_array(self.mask, out_grad.dtype))


def dropout(x, mask_scale):
    return Dropout(mask_scale)(x)


class ReLUDropout(TensorOp):
    """relu(x) * mask in one node."""

    def __init__(self, mask):
        self.mask = mask

    def compute(self, x):
        out = np.maximum(x, 0)
        out *= _mask_array(self.mask, x.dtype)
        return out

    def gradient(self, out_grad, node):
        # out > 0 exactly where x > 0 and mask > 0; elsewhere the gradient is 0 either way
        grad = out_grad.realize_cached_data() * _mask_array(self.mask, out_grad.dtype)
        grad *= node.realize_cached_data() > 0
        return _const(grad)


def relu_dropout(x, mask_scale):
    return ReLUDropout(mask_scale)(x)
