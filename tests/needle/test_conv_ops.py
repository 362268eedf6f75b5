"""needle conv/pool ops: course semantics, float64 gradients by central differences, dtypes."""
import numpy as np
import pytest

import needle as ndl
from needle.ops.ops_conv import (BLOCK_BYTES, MIN_BLOCKS, Conv, ConvInputGrad, ConvWeightGrad,
                                 _image_blocks)

from .gradcheck import check_gradients

RNG = np.random.default_rng(7)


def _randn(*shape):
    return RNG.standard_normal(shape)


def _distinct(*shape):
    """Values far apart (no ties in a pooling window, no kink within finite-difference reach)."""
    return RNG.permutation(np.prod(shape)).reshape(shape) * 0.1 + RNG.uniform(0, 0.01, shape)


def test_pad_takes_a_before_after_pair_per_axis():
    a = np.arange(6.0).reshape(2, 3)
    out = ndl.pad(ndl.Tensor(a), ((1, 1), (2, 0))).numpy()
    np.testing.assert_array_equal(out, np.pad(a, ((1, 1), (2, 0))))
    with pytest.raises(ValueError):
        ndl.pad(ndl.Tensor(a), ((1, 1),))


def test_flip_reverses_given_axes():
    a = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(ndl.flip(ndl.Tensor(a), (0, 2)).numpy(), a[::-1, :, ::-1])
    np.testing.assert_array_equal(ndl.flip(ndl.Tensor(a), None).numpy(), a[::-1, ::-1, ::-1])


def test_dilate_inserts_zeros_after_each_entry_as_the_course():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = ndl.dilate(ndl.Tensor(a), (0,), 1).numpy()
    np.testing.assert_array_equal(out, [[1, 2], [0, 0], [3, 4], [0, 0]])
    both = ndl.dilate(ndl.Tensor(a), (0, 1), 2).numpy()
    assert both.shape == (6, 6) and both[3, 3] == 4 and both.sum() == 10
    np.testing.assert_array_equal(ndl.dilate(ndl.Tensor(a), (1,), 0).numpy(), a)
    np.testing.assert_array_equal(ndl.undilate(ndl.Tensor(both), (0, 1), 2).numpy(), a)


def _np_conv(a, b, stride, padding):
    """Direct (loop) NHWC cross-correlation: the slow, obvious reference."""
    a = np.pad(a, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    k = b.shape[0]
    out_h, out_w = (a.shape[1] - k) // stride + 1, (a.shape[2] - k) // stride + 1
    out = np.zeros((a.shape[0], out_h, out_w, b.shape[3]))
    for y in range(out_h):
        for x in range(out_w):
            patch = a[:, y * stride:y * stride + k, x * stride:x * stride + k, :]
            out[:, y, x, :] = np.tensordot(patch, b, axes=([1, 2, 3], [0, 1, 2]))
    return out


@pytest.mark.parametrize("kernel,stride,padding", [(1, 1, 0), (2, 2, 1), (3, 1, 1), (3, 2, 0),
                                                   (4, 2, 2), (5, 1, 2), (5, 2, 1)])
def test_conv_forward_matches_direct_loop(kernel, stride, padding):
    a, b = _randn(2, 9, 7, 3), _randn(kernel, kernel, 3, 4)
    out = ndl.conv(ndl.Tensor(a, dtype="float64"), ndl.Tensor(b, dtype="float64"), stride=stride,
                   padding=padding)
    np.testing.assert_allclose(out.numpy(), _np_conv(a, b, stride, padding), rtol=1e-12, atol=1e-12)


def test_conv_rejects_a_kernel_larger_than_the_input_and_channel_mismatch():
    with pytest.raises(ValueError, match="does not fit"):
        ndl.conv(ndl.Tensor(_randn(1, 2, 2, 1)), ndl.Tensor(_randn(3, 3, 1, 1)))
    with pytest.raises(ValueError, match="channels"):
        ndl.conv(ndl.Tensor(_randn(1, 4, 4, 2)), ndl.Tensor(_randn(3, 3, 1, 1)))


def test_conv_training_memory_stays_below_one_column_matrix():
    """Convs run by image blocks: neither the forward (for the backward) nor the backward holds
    the whole (N*Ho*Wo, K*K*C_in) column matrix, here 9.4 MB against 1 MB of input."""
    import tracemalloc
    a = ndl.Tensor(RNG.random((64, 16, 16, 16), dtype=np.float32), requires_grad=True)  # 1 MB
    b = ndl.Tensor(RNG.random((3, 3, 16, 32), dtype=np.float32), requires_grad=True)
    column_bytes = 64 * 16 * 16 * 3 * 3 * 16 * 4
    tracemalloc.start()
    try:
        out = ndl.conv(a, b, padding=1)  # (64, 16, 16, 32): 2 MB
        held_after_forward = tracemalloc.get_traced_memory()[0]
        out.sum().backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert held_after_forward < 2 * out.numpy().nbytes  # the output, no columns kept
    assert peak < column_bytes  # the backward: gradients, the padded input, one block per thread


@pytest.mark.parametrize("n,bytes_per_image", [(64, 113_000), (64, 28_000), (7, 1), (1, 10 << 20),
                                                 (100, 300_000)])
def test_image_blocks_are_even_and_bounded(n, bytes_per_image):
    """Blocks cover the batch in order, differ by at most one image (so threads get equal work),
    stay within BLOCK_BYTES unless one image is bigger, and number at least MIN_BLOCKS if they can."""
    blocks = _image_blocks(n, bytes_per_image)
    assert [i for block in blocks for i in range(block.start, block.stop)] == list(range(n))
    sizes = [block.stop - block.start for block in blocks]
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) == 1 or max(sizes) * bytes_per_image <= BLOCK_BYTES
    assert len(blocks) >= min(n, MIN_BLOCKS)


GRADIENT_CASES = {
    "pad": (lambda a: ndl.pad(a, ((0, 0), (1, 2), (2, 0))), [_randn(2, 3, 2)]),
    "flip": (lambda a: ndl.flip(a, (1, 2)), [_randn(2, 3, 4)]),
    "dilate": (lambda a: ndl.dilate(a, (0, 2), 2), [_randn(2, 3, 2)]),
    "undilate": (lambda a: ndl.undilate(a, (1,), 1), [_randn(2, 6, 3)]),
    "conv_k3_s1_p1": (lambda a, b: ndl.conv(a, b, stride=1, padding=1), [_randn(2, 5, 5, 2), _randn(3, 3, 2, 3)]),
    "conv_k2_s2_p0_odd": (lambda a, b: ndl.conv(a, b, stride=2), [_randn(1, 5, 7, 2), _randn(2, 2, 2, 3)]),
    "conv_k5_s2_p2": (lambda a, b: ndl.conv(a, b, stride=2, padding=2), [_randn(1, 7, 6, 1), _randn(5, 5, 1, 2)]),
    "conv_k1": (lambda a, b: ndl.conv(a, b), [_randn(2, 3, 3, 3), _randn(1, 1, 3, 2)]),
    "conv_k3_s2_many_channels": (lambda a, b: ndl.conv(a, b, stride=2, padding=1),
                                 [_randn(1, 5, 4, 4), _randn(3, 3, 4, 2)]),
    "conv_bias": (lambda a, b, c: Conv(2, 1)(a, b, c), [_randn(1, 5, 5, 2), _randn(3, 3, 2, 2), _randn(2)]),
    "max_pool_2": (lambda a: ndl.max_pool2d(a, 2), [_distinct(2, 2, 5, 4)]),
    "max_pool_3_s2": (lambda a: ndl.max_pool2d(a, 3, 2), [_distinct(1, 2, 7, 6)]),
    "max_pool_3_s1": (lambda a: ndl.max_pool2d(a, 3, 1), [_distinct(1, 1, 5, 5)]),
    "avg_pool_2": (lambda a: ndl.avg_pool2d(a, 2), [_randn(2, 2, 5, 4)]),
    "avg_pool_3_s1": (lambda a: ndl.avg_pool2d(a, 3, 1), [_randn(1, 2, 5, 6)]),
}


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_float64_gradient_matches_central_differences(name):
    fn, arrays = GRADIENT_CASES[name]
    check_gradients(fn, *arrays)


@pytest.mark.parametrize("name", GRADIENT_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ops_keep_their_input_dtype_forward_and_backward(name, dtype):
    fn, arrays = GRADIENT_CASES[name]
    tensors = [ndl.Tensor(a, dtype=dtype) for a in arrays]
    out = fn(*tensors)
    assert out.dtype == np.dtype(dtype)
    out.sum().backward()
    assert all(t.grad.dtype == np.dtype(dtype) for t in tensors)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0), (2, 2)])
def test_conv_adjoints_are_differentiable_too(stride, padding):
    """The input and weight gradients are ops whose gradients are conv ops again (any order)."""
    a, b = _randn(1, 5, 6, 2), _randn(3, 3, 2, 2)
    g = _randn(*Conv(stride, padding).compute(a, b).shape)
    check_gradients(lambda g_, b_: ConvInputGrad(stride, padding, a.shape)(g_, b_), g, b)
    check_gradients(lambda a_, g_: ConvWeightGrad(stride, padding, 3)(a_, g_), a, g)


@pytest.mark.parametrize("needs", [(True, True, True), (False, True, True), (True, False, True),
                                   (False, False, True), (True, True, False)])
def test_conv_gradients_by_blocks_give_each_needed_adjoint(needs):
    """The bias adjoint is summed in the kernel gradient's image blocks (8 images: 2 blocks); each
    needed adjoint matches a reference made without blocks, and an unneeded one is None."""
    a, b, bias = _randn(8, 6, 5, 2), _randn(3, 3, 2, 3), _randn(3)
    op = Conv(1, 1)
    out = op.compute(a, b, bias)
    g = _randn(*out.shape)
    grad_a, grad_b, grad_bias = op.gradient_arrays(g, [a, b, bias], out, needs)
    eps = 1e-6  # the conv is linear in its kernel: one difference per entry is exact to rounding
    ref_b = np.zeros_like(b)
    for index in np.ndindex(b.shape):
        step = np.zeros_like(b)
        step[index] = eps
        ref_b[index] = np.sum(g * (_np_conv(a, b + step, 1, 1) - _np_conv(a, b, 1, 1))) / eps
    for got, need, ref in ((grad_b, needs[1], ref_b), (grad_bias, needs[2], g.sum((0, 1, 2)))):
        if need:
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)
        else:
            assert got is None
    assert (grad_a is not None) == needs[0]
