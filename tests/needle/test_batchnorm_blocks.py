"""BatchNormTrain on big arrays (ops_batchnorm_blocks): the definition's numbers, whatever the threads."""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from needle import parallel
from needle.ops import ops_batchnorm_blocks as blocked
from needle.ops import ops_fused as fused

EPS = 1e-5
SHAPES = [(9000, 16), (3001, 50), (2048, 128)]  # narrow rows (wide view), a prime row count, wide rows


def _inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)  # an offset mean: centring matters
    weight, bias = (rng.standard_normal((2, 1, shape[1])) + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    return x, weight, bias, g


def _run(x, weight, bias, g, relu=True, drop_p=None, seed=0):
    """(out, grad_x, grad_weight, grad_bias, mean, var) of one BatchNormTrain forward and backward."""
    np.random.seed(seed)  # the dropout mask's draws
    op = fused.BatchNormTrain(EPS, relu=relu, drop_p=drop_p)
    out = op.compute(x, weight, bias)
    return (out, *op.gradient_arrays(g, [x, weight, bias], out, (True, True, True)), op.mean, op.var)


def _reference(x, weight, bias, g, relu, mask):
    """The definitions, in float64 with numpy's own reductions."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mean) / np.sqrt(var + EPS)
    out = xhat * weight + bias
    if relu:
        out = np.maximum(out, 0)
    if mask is not None:
        out = out * mask
    g = g * (mask if mask is not None else 1) * ((out > 0) if relu else 1)
    n = len(x)
    grad_bias, grad_weight = g.sum(axis=0), (g * xhat).sum(axis=0)
    grad_x = weight / np.sqrt(var + EPS) * (g - grad_bias / n - xhat * grad_weight / n)
    return out, grad_x, grad_weight.reshape(weight.shape), grad_bias.reshape(bias.shape), mean, var


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu, drop_p", [(False, None), (True, None), (True, 0.2)])
def test_big_arrays_take_the_block_passes_and_give_the_definitions_numbers(shape, relu, drop_p):
    x, weight, bias, g = _inputs(shape, np.float64)
    assert fused._rows(x).blocks is not None and len(fused._rows(x).blocks) % blocked.BLOCK_MULTIPLE == 0
    got = _run(x, weight, bias, g, relu, drop_p)
    np.random.seed(0)
    mask = None if drop_p is None else fused.draw_dropout_mask(shape, drop_p, x.dtype)
    for name, value, expected in zip(["out", "grad_x", "grad_weight", "grad_bias", "mean", "var"],
                                     got, _reference(x, weight, bias, g, relu, mask)):
        np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("relu, drop_p", [(False, None), (True, 0.2)])
def test_narrow_rows_below_the_split_take_the_block_passes_as_one_block(relu, drop_p):
    """Small arrays of narrow rows (BatchNorm2d's) are seen as wide rows, which only the block
    passes handle: one block here, and still the definition's numbers."""
    x, weight, bias, g = _inputs((4096, 16), np.float64)
    rows = fused._rows(x)
    assert rows.k > 1 and not rows.whole and rows.blocks is None
    got = _run(x, weight, bias, g, relu, drop_p)
    np.random.seed(0)
    mask = None if drop_p is None else fused.draw_dropout_mask(x.shape, drop_p, x.dtype)
    for name, value, expected in zip(["out", "grad_x", "grad_weight", "grad_bias", "mean", "var"],
                                     got, _reference(x, weight, bias, g, relu, mask)):
        np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-9, err_msg=name)


def test_float32_statistics_are_at_least_as_accurate_as_one_whole_pass():
    x, weight, bias, g = _inputs((50176, 16), np.float32)  # the bench CNN's first BatchNorm2d
    mean, var = _run(x, weight, bias, g)[4:]
    x64 = x.astype(np.float64)
    assert np.abs(mean - x64.mean(axis=0)).max() < 1e-5
    np.testing.assert_allclose(var, x64.var(axis=0), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_results_are_bit_identical_for_one_to_four_threads(shape):
    x, weight, bias, g = _inputs(shape, np.float32)
    before = parallel.get_num_threads()
    results = []
    try:
        with threadpool_limits(1, user_api="blas"):
            for threads in (1, 2, 3, 4):
                parallel.set_num_threads(threads)
                results.append(_run(x, weight, bias, g, relu=True, drop_p=0.1))
    finally:
        parallel.set_num_threads(before)
    for other in results[1:]:
        for one, two in zip(results[0], other):
            np.testing.assert_array_equal(one, two)


def test_row_blocks_cover_the_rows_once_in_order():
    for rows, width in [(784, 1024), (3001, 50), (5, 1 << 20), (1, 64)]:
        blocks = blocked.row_blocks(rows, width)
        assert blocks[0].start == 0 and blocks[-1].stop == rows
        assert all(a.stop == b.start for a, b in zip(blocks, blocks[1:]))
        assert all(b.stop > b.start for b in blocks)
        assert len(blocks) % blocked.BLOCK_MULTIPLE == 0 or len(blocks) == rows
        assert all((b.stop - b.start - 1) * width < blocked.BLOCK_ELEMENTS for b in blocks)
