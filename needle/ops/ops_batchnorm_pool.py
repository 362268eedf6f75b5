"""Training BatchNorm2d, ReLU and a 2x2 max-pool as one op on NHWC arrays (a CNN stage's tail).

Beyond a core's cache every full-size pass is a trip to memory. Done as three ops, the normalised
activation is written in full, read back by the pool, and its full-size gradient is written by
the pool's backward and read twice by BatchNorm's. Here the work goes by blocks of whole images:
- forward: the batch statistics (ops_batchnorm_blocks.statistics), then per block the normalised,
  rectified block in a scratch array in cache, pooled straight away (ops_pool's pairwise passes
  and picks), so the full-size activation is never written. Same operations on the same values
  as the three ops (on arrays of needle.parallel.MIN_ELEMENTS or more, where BatchNormTrain takes
  these block passes too): the same bits. When every channel's scale (weight / std) is positive,
  normalising is non-decreasing, so the block is pooled first and only the maxima are
  normalised: the same bits again, a quarter of the normalising (the forward op 0.77x the time
  on one thread, 0.9x on two).
- backward: from the pooled gradient (a quarter of the size) and the picks. The ReLU passed at a
  window's pick exactly when the window's maximum is positive, so g' = g * (pooled > 0) there and
  0 elsewhere. Per block, g' is scattered into the input gradient's array and BatchNorm's column
  sums are taken while the block is in cache; the input gradient is then finished in place
  (ops_batchnorm_blocks.input_gradient). When the forward pooled first it kept x at the picks (a
  quarter of x), so the column sums come from the pooled arrays alone, and the scatter moves into
  the input gradient's blocks (the backward op 0.77x the time for the bench CNN's first stage on
  two threads, 0.9x on one). The column sums add the same terms as the three ops' backward, in
  another order (last bits differ).
Blocks are fixed by the shape alone (ops_batchnorm_blocks.row_blocks over images), so results
do not depend on the thread count.
"""
import numpy as np

from .. import parallel
from ..autograd import ArrayGradientOp
from . import ops_batchnorm_blocks as blocked
from .ops_fused import _gradients_from_sums, _rows, _tile_row
from .ops_mathematic import _ones, _zeros
from .ops_pool import pool_pairs_into

__all__ = ["BatchNormReLUMaxPool2", "batchnorm_relu_maxpool2"]


class BatchNormReLUMaxPool2(ArrayGradientOp):
    """x (N, H, W, C) with H, W even -> max_pool2d(relu(batchnorm_train(x)), 2): (N, H/2, W/2, C).

    on_stats(mean, var): called with the batch statistics after each compute (see BatchNormTrain)."""

    replayable = True
    writes_gradients_into = (1, 2)  # weight and bias: see Linear

    def __init__(self, eps=1e-5, on_stats=None):
        self.eps, self.on_stats = float(eps), on_stats
        self.mean = self.inv_std = self.scale = self.picks = None
        self.x_picks = None  # (N, H/2, W/2, C): x at the picks, when pooled first

    def compute(self, x, weight, bias):
        x = np.ascontiguousarray(x)
        n, height, width, channels = x.shape
        if height % 2 or width % 2:
            raise ValueError(f"a fused 2x2 max-pool needs an even height and width, got {x.shape}")
        flat = x.reshape(-1, channels)  # (N*H*W, C)
        mean, var = blocked.statistics(_rows(flat), flat)  # (C,) each
        inv_std = 1.0 / np.sqrt(var + self.eps)
        scale = weight.reshape(-1) * inv_std  # (C,)
        out = np.empty((n, height // 2, width // 2, channels), dtype=x.dtype)
        right_won = np.empty((n, height // 2, 2, width // 2, channels), dtype=bool)
        bottom_won = np.empty(out.shape, dtype=bool)
        if np.all(scale > 0):
            self.x_picks = np.empty_like(out)
            self._pool_then_normalise(x, mean, scale, bias.reshape(-1), self.x_picks, out, right_won,
                                      bottom_won)
        else:  # (a replayed op is a copy of the recorded one: clear what that one kept)
            self.x_picks = None
            self._normalise_then_pool(x, mean, scale, bias.reshape(-1), out, right_won, bottom_won)
        self.mean, self.inv_std, self.scale, self.picks = mean, inv_std, scale, (right_won, bottom_won)
        if self.on_stats is not None:
            self.on_stats(mean, var)
        return out

    @staticmethod
    def _normalise_then_pool(x, mean, scale, bias, out, right_won, bottom_won):
        """Per block: normalise and rectify into a scratch array, then pool it."""
        _, height, width, channels = x.shape
        mean_row, scale_row, bias_row = (_tile_row(v, width) for v in (mean, scale, bias))
        zeros = _zeros((width * channels,), x.dtype)

        def block(_, images):  # image rows (W*C values) as the rows of numpy's loops
            rows = _image_rows(x[images])
            normalised = np.empty_like(rows)  # (n_b*H, W*C) scratch
            blocked.normalise_block(rows, mean_row, scale_row, bias_row, zeros, None, normalised)
            count = images.stop - images.start
            pairs = normalised.reshape(count, height // 2, 2, width // 2, 2, channels)
            row_max = np.empty((count, height // 2, 2, width // 2, channels), dtype=x.dtype)
            pool_pairs_into(pairs, row_max, right_won[images], out[images], bottom_won[images])
        parallel.run_blocks(_blocks(x), x.size, block)

    @staticmethod
    def _pool_then_normalise(x, mean, scale, bias, x_picks, out, right_won, bottom_won):
        """Per block: pool x into x_picks, then normalise and rectify the maxima only (a quarter of
        the values) into out.

        With every scale > 0, normalising and rectifying is non-decreasing in x, value by value and
        after each rounding, so the maximum of a window's normalised values is the normalised
        maximum: the same bits as _normalise_then_pool. The picks are the windows' first maxima of
        x, which are the normalised values' first maxima too, except where normalising rounds two
        different values of one window to the same result (the gradient then goes to the larger)."""
        _, height, width, channels = x.shape
        half = width // 2
        mean_row, scale_row, bias_row = (_tile_row(v, half) for v in (mean, scale, bias))
        zeros = _zeros((half * channels,), x.dtype)

        def block(_, images):
            count = images.stop - images.start
            pairs = x[images].reshape(count, height // 2, 2, half, 2, channels)
            row_max = np.empty((count, height // 2, 2, half, channels), dtype=x.dtype)
            pool_pairs_into(pairs, row_max, right_won[images], x_picks[images], bottom_won[images])
            blocked.normalise_block(_image_rows(x_picks[images]), mean_row, scale_row, bias_row, zeros,
                                    None, _image_rows(out[images]))  # (n_b*H/2, W/2*C) rows
        parallel.run_blocks(_blocks(x), x.size, block)

    def gradient_arrays(self, g, inputs, out, needs, outs=None):
        """g (N, H/2, W/2, C) -> (grad_x (N, H, W, C), grad_weight, grad_bias); outs: optional
        arrays of the gradients' dtype for the weight and bias gradients (needle.capture)."""
        x = np.ascontiguousarray(inputs[0])
        channels = x.shape[3]
        if self.x_picks is None:  # grad_x: g' scattered, finished in place below
            grad_x, plain, centred, k = self._scattered_sums(g, x, out)
        else:  # the sums from the picks alone; g' scattered with the input gradient
            passed, plain, centred, k = self._sums_at_picks(g, out)
            grad_x = None
        grad_bias = np.add.reduce(plain, axis=0)  # (C,)
        weight_grad, bias_grad, factors = _gradients_from_sums(  # as BatchNormTrain's
            self, blocked.fold(centred, k), grad_bias, inputs, needs, outs, x.size // channels)
        if factors is None:
            return None, weight_grad, bias_grad
        centred_factor, shift = factors
        if grad_x is None:
            return self._scatter_input_gradient(passed, x, centred_factor, shift), weight_grad, bias_grad
        rows = _flat(grad_x)
        blocked.input_gradient(_rows(rows), rows, _flat(x), self.mean, self.scale, centred_factor,
                               shift, rows)
        return grad_x, weight_grad, bias_grad

    def _scattered_sums(self, g, x, out):
        """Per block: g' = g * (pooled > 0) scattered to the picks in a full-size array, its column
        sums, and the column sums of g' (x - mean) while the block is in cache -> (scattered,
        per-block sums of g', of g' (x - mean) as wide rows of k = W rows)."""
        width, channels = x.shape[2], x.shape[3]
        blocks = _blocks(x)
        mean_row = _tile_row(self.mean, width)
        # the scatter's narrow loops cost more than a full-size array's trip to memory and back
        scattered = np.empty(x.shape, dtype=g.dtype)  # (N, H, W, C)
        plain = np.empty((len(blocks), channels), dtype=g.dtype)  # per block: sum of g'
        centred = np.empty((len(blocks), width * channels), dtype=g.dtype)  # sum of g' (x - mean)

        def sums(index, images):
            passed = np.multiply(g[images], out[images] > 0)  # (n_b, H/2, W/2, C) g' at the picks
            self._scatter(passed, images, scattered[images])
            _block_sums(passed, scattered[images], x[images], mean_row, plain[index], centred[index])
        parallel.run_blocks(blocks, x.size, sums)
        return scattered, plain, centred, width

    def _sums_at_picks(self, g, out):
        """As _scattered_sums, from the pooled arrays alone: g' is 0 off the picks, and x at the
        picks was kept by the forward -> (g' at the picks (N, H/2, W/2, C), the sums, k = W/2).
        The same products as there, added in another order."""
        half, channels = out.shape[2], out.shape[3]
        blocks = _blocks(out)
        mean_row = _tile_row(self.mean, half)
        passed = np.empty(out.shape, dtype=g.dtype)
        plain = np.empty((len(blocks), channels), dtype=g.dtype)
        centred = np.empty((len(blocks), half * channels), dtype=g.dtype)

        def sums(index, images):
            at_picks = np.multiply(g[images], out[images] > 0, out=passed[images])
            _block_sums(at_picks, at_picks, self.x_picks[images], mean_row, plain[index], centred[index])
        parallel.run_blocks(blocks, out.size, sums)
        return passed, plain, centred, half

    def _scatter_input_gradient(self, passed, x, centred_factor, shift):
        """Per block: g' scattered to the picks into grad_x, then finished in place into the input
        gradient (ops_batchnorm_blocks.input_gradient_block) while the block is in cache."""
        width = x.shape[2]
        mean_row, scale_row, factor_row, shift_row = (_tile_row(v, width) for v in
                                                      (self.mean, self.scale, centred_factor, shift))
        grad_x = np.empty(x.shape, dtype=passed.dtype)  # (N, H, W, C)

        def block(_, images):
            into = grad_x[images]
            self._scatter(passed[images], images, into)
            rows = _image_rows(into)  # (n_b*H, W*C)
            blocked.input_gradient_block(rows, _image_rows(x[images]), mean_row, scale_row, factor_row,
                                         shift_row, rows)
        parallel.run_blocks(_blocks(x), x.size, block)
        return grad_x

    def _scatter(self, passed, images, into):
        """into (n_b, H, W, C) = the images' pooled gradient at each window's pick, 0 elsewhere.

        By products with the picks and exact differences (v - v * pick is v or 0), so no
        boolean masks are made (their strided loops over C values cost more than the products)."""
        right_won, bottom_won = self.picks  # (N, H/2, 2, W/2, C), (N, H/2, W/2, C)
        count, half_h, half_w, channels = passed.shape
        windows = into.reshape(count, half_h, 2, half_w, 2, channels)
        bottom = np.multiply(passed, bottom_won[images])  # the windows' bottom row won
        rows = (np.subtract(passed, bottom), bottom)  # (top, bottom): g' or 0 each
        for row, value in enumerate(rows):
            right = windows[:, :, row, :, 1]
            np.multiply(value, right_won[images, :, row], out=right)
            np.subtract(value, right, out=windows[:, :, row, :, 0])


def _block_sums(passed, g_prime, x, mean_row, plain, centred):
    """One block's column sums: plain (C,) = sum of g' (passed: its values at the picks), centred
    (W*C,) = sum over image rows of g' (x - mean), g_prime and x (n_b, H, W, C) alike (at the picks
    both pooled: H/2, W/2), mean_row tiled to their rows."""
    channels = passed.shape[3]
    plain[...] = _ones(passed.size // channels, passed.dtype) @ passed.reshape(-1, channels)
    products = np.subtract(_image_rows(x), mean_row)  # (n_b*H, W*C) scratch
    products *= _image_rows(g_prime)
    np.matmul(_ones(products.shape[0], passed.dtype), products, out=centred)


def _image_rows(images):
    """(n_b, H, W, C) contiguous -> (n_b*H, W*C): wide rows for numpy's loops (a view)."""
    return images.reshape(-1, images.shape[2] * images.shape[3])


def _flat(images):
    """(N, H, W, C) contiguous -> (N*H*W, C) (a view)."""
    return images.reshape(-1, images.shape[3])


def _blocks(x):
    """Whole-image blocks of about blocked.BLOCK_ELEMENTS values (fixed by the shape)."""
    return blocked.row_blocks(x.shape[0], x[0].size)


def batchnorm_relu_maxpool2(x, weight, bias, eps=1e-5, on_stats=None):
    return BatchNormReLUMaxPool2(eps, on_stats)(x, weight, bias)
