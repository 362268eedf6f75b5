"""BatchNormTrain's passes over big arrays (BatchNorm2d's (N*H*W, C) rows), by fixed blocks of rows.

Beyond a core's cache every full-size pass is a trip to memory, and the column sums (BLAS GEMVs)
ran on the calling thread alone while the other threads waited. Here each block is taken through
all of its passes while it is in cache, and its column sums are computed there too, in parallel:
- forward: the block's column sums and its sum of squared deviations from its own mean, combined in
  block order into the batch mean and biased variance (Chan, Golub and LeVeque's pairwise formula);
  then out = (x - mean) * scale + bias [relu] [* mask] block by block;
- backward: the gradient through the mask and the relu, and its column sums with and without the
  factor (x - mean), recomputed per block rather than kept from the forward (no full-size centred
  copy is stored); then the input gradient block by block.
Blocks are fixed by the shape alone and a block's calls are the same on any thread, so results
do not depend on the thread count (they differ from the unblocked passes in the last bits of the
statistics: other sums). Arrays are seen as the wide rows of `_Rows` (k rows of C as one row).
"""
import numpy as np

from .. import parallel
from .ops_mathematic import _ones

# Blocks of ~2 MiB of float32 (a block and its scratch in L3, not in a 512 KiB L2): each block
# costs a dozen numpy calls, and on two threads every call's return waits for the GIL the other
# thread holds, which cost more than the cache misses: 0.5 MiB blocks in multiples of 4 made the
# bench CNN's 2-thread step ~6 % slower on the thirteenth session's host (bench/needle_cnn.py)
BLOCK_ELEMENTS = 1 << 19
BLOCK_MULTIPLE = 2  # block counts are multiples of this (even parts for 1 or 2 threads)


def row_blocks(rows: int, width: int) -> list[slice]:
    """Slices of about BLOCK_ELEMENTS elements covering range(rows), as even as can be."""
    count = -(-rows * width // BLOCK_ELEMENTS)
    count = min(rows, -(-count // BLOCK_MULTIPLE) * BLOCK_MULTIPLE)
    bounds = [rows * i // count for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def _blocks(rows):
    """The blocks of a _Rows geometry; one for an array too small to have them."""
    return rows.blocks or [slice(0, rows.wide_shape[0])]


def fold(sums, k):
    """(groups, k * D) column sums of wide rows -> (D,): every group's and position's added, in
    order (the same order whatever the threads)."""
    return np.add.reduce(sums.reshape(-1, sums.shape[1] // k), axis=0)


def statistics(rows, x):
    """Batch mean and biased variance (D,) of x (N, D) by blocks (one for a small array).

    Groups: the rows of one block at one position of the wide rows (a wide row holds k rows), so a
    group's mean is already a wide row; Chan et al.'s formula combines the groups' sums of squared
    deviations from their own means."""
    wide, blocks, k = rows.wide(x), _blocks(rows), rows.k
    sums = np.empty((len(blocks), wide.shape[1]), dtype=x.dtype)  # (blocks, k * D) per group
    squares = np.empty_like(sums)  # per group: sum of squared deviations from the group's mean
    counts = np.array([b.stop - b.start for b in blocks], dtype=x.dtype)  # rows of x in a group

    def block(index, part):
        xb = wide[part]  # (r, k * D)
        np.matmul(_ones(xb.shape[0], x.dtype), xb, out=sums[index])
        deviations = xb - sums[index] / counts[index]
        np.multiply(deviations, deviations, out=deviations)
        np.matmul(_ones(xb.shape[0], x.dtype), deviations, out=squares[index])
    parallel.run_blocks(blocks, rows.size, block)
    n = x.dtype.type(x.shape[0])
    mean = fold(sums, k) / n  # (D,)
    spread = sums / counts[:, None] - rows.tile(mean)  # (blocks, k * D): group means about the mean
    var = (fold(squares, k) + fold(counts[:, None] * (spread * spread), k)) / n
    return mean, var


def normalise(rows, x, mean, scale, bias, relu, mask, out):
    """out = (x - mean) * scale + bias, then max(., 0) if relu, then * mask if a mask."""
    wide_x, wide_out = rows.wide(x), rows.wide(out)
    wide_mask = None if mask is None else rows.wide(mask)
    mean, scale, bias = rows.tile(mean), rows.tile(scale), rows.tile(bias)
    zeros = np.zeros(wide_x.shape[1], dtype=x.dtype) if relu else None

    def block(_, part):
        normalise_block(wide_x[part], mean, scale, bias, zeros, None if mask is None else wide_mask[part],
                        wide_out[part])
    parallel.run_blocks(_blocks(rows), rows.size, block)


def normalise_block(x, mean, scale, bias, zeros, mask, into):
    """One block: into = (x - mean) * scale + bias, then max(., zeros) unless zeros is None (the
    ReLU), then * mask if a mask; the vectors are rows of the block's width."""
    np.subtract(x, mean, out=into)
    into *= scale
    into += bias
    if zeros is not None:
        np.maximum(into, zeros, out=into)
    if mask is not None:
        into *= mask


def mask_gradient(g, mask, relu_out, masked):
    """masked = g * mask (if a mask), then * (relu_out > 0) (if relu_out)."""
    if mask is not None:
        np.multiply(g, mask, out=masked)
        g = masked
    if relu_out is not None:  # relu_out > 0 exactly where relu (and the mask) passed
        np.multiply(g, relu_out > 0, out=masked)


def gradient_sums(rows, g, x, mean, mask, relu_out, masked):
    """(sum of g', sum of g' * (x - mean)) over the rows, (D,) each, where g' is g through the mask
    and the relu (relu_out: the forward's output, or None), written into masked (None: g' = g)."""
    wide_g, wide_x, blocks, k = rows.wide(g), rows.wide(x), _blocks(rows), rows.k
    wide_mask = None if mask is None else rows.wide(mask)
    wide_relu = None if relu_out is None else rows.wide(relu_out)
    wide_masked = None if masked is None else rows.wide(masked)
    mean = rows.tile(mean)
    plain = np.empty((len(blocks), wide_g.shape[1]), dtype=g.dtype)  # (blocks, k * D)
    centred = np.empty_like(plain)

    def block(index, part):
        gb = wide_g[part]
        if wide_masked is not None:
            mask_gradient(gb, None if wide_mask is None else wide_mask[part],
                          None if wide_relu is None else wide_relu[part], wide_masked[part])
            gb = wide_masked[part]
        ones = _ones(gb.shape[0], gb.dtype)
        np.matmul(ones, gb, out=plain[index])
        products = np.subtract(wide_x[part], mean)  # (r, k * D) scratch
        products *= gb
        np.matmul(ones, products, out=centred[index])
    parallel.run_blocks(blocks, rows.size, block)
    return fold(plain, k), fold(centred, k)


def input_gradient(rows, g, x, mean, scale, centred_factor, shift, grad_x):
    """grad_x = g * scale - (x - mean) * centred_factor - shift (grad_x may be g itself)."""
    wide_g, wide_x, wide_out = rows.wide(g), rows.wide(x), rows.wide(grad_x)
    mean, scale = rows.tile(mean), rows.tile(scale)
    centred_factor, shift = rows.tile(centred_factor), rows.tile(shift)

    def block(_, part):
        input_gradient_block(wide_g[part], wide_x[part], mean, scale, centred_factor, shift, wide_out[part])
    parallel.run_blocks(_blocks(rows), rows.size, block)


def input_gradient_block(g, x, mean, scale, centred_factor, shift, into):
    """One block of input_gradient; the vectors are rows of the block's width (into may be g)."""
    scratch = np.subtract(x, mean)
    scratch *= centred_factor
    np.multiply(g, scale, out=into)
    into -= scratch
    into -= shift
