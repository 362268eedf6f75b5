"""needle.ops: forward against numpy, gradients by finite differences, edge cases and dtypes."""
import numpy as np
import pytest

import needle as ndl

from .gradcheck import check_gradients

RNG = np.random.default_rng(42)


def _randn(*shape):
    return RNG.standard_normal(shape)


def _positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def _away_from_zero(*shape):
    """Values with |x| >= 0.1 so kinks (relu at 0) stay out of finite-difference reach."""
    x = RNG.uniform(0.1, 1.5, shape)
    return x * RNG.choice([-1.0, 1.0], shape)


def _np_logsumexp(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m, axis=axis)


# name -> (needle fn, numpy reference, input arrays)
FORWARD_CASES = {
    "add": (ndl.add, np.add, [_randn(3, 4), _randn(3, 4)]),
    "add_scalar": (lambda a: ndl.add_scalar(a, 1.5), lambda a: a + 1.5, [_randn(3, 4)]),
    "multiply": (ndl.multiply, np.multiply, [_randn(3, 4), _randn(3, 4)]),
    "mul_scalar": (lambda a: ndl.mul_scalar(a, -2.5), lambda a: a * -2.5, [_randn(3, 4)]),
    "power_scalar_2": (lambda a: ndl.power_scalar(a, 2), lambda a: a ** 2, [_randn(3, 4)]),
    "power_scalar_3": (lambda a: ndl.power_scalar(a, 3), lambda a: a ** 3, [_randn(3, 4)]),
    "power_scalar_frac": (lambda a: ndl.power_scalar(a, 0.5), np.sqrt, [_positive(3, 4)]),
    "power": (ndl.power, np.power, [_positive(3, 4), _randn(3, 4)]),
    "divide": (ndl.divide, np.divide, [_randn(3, 4), _positive(3, 4)]),
    "divide_scalar": (lambda a: ndl.divide_scalar(a, 4.0), lambda a: a / 4.0, [_randn(3, 4)]),
    "transpose_default": (ndl.transpose, lambda a: np.swapaxes(a, -1, -2), [_randn(2, 3, 4)]),
    "transpose_axes": (lambda a: ndl.transpose(a, (0, 2)), lambda a: np.swapaxes(a, 0, 2),
                       [_randn(2, 3, 4)]),
    "reshape": (lambda a: ndl.reshape(a, (4, 6)), lambda a: a.reshape(4, 6), [_randn(2, 3, 4)]),
    "broadcast_to": (lambda a: ndl.broadcast_to(a, (2, 3, 4)), lambda a: np.broadcast_to(a, (2, 3, 4)),
                     [_randn(3, 1)]),
    "summation_all": (ndl.summation, np.sum, [_randn(3, 4)]),
    "summation_int": (lambda a: ndl.summation(a, 1), lambda a: a.sum(1), [_randn(2, 3, 4)]),
    "summation_tuple": (lambda a: ndl.summation(a, (0, 2)), lambda a: a.sum((0, 2)), [_randn(2, 3, 4)]),
    "summation_negative": (lambda a: ndl.summation(a, -1), lambda a: a.sum(-1), [_randn(2, 3, 4)]),
    "matmul": (ndl.matmul, np.matmul, [_randn(3, 4), _randn(4, 5)]),
    "matmul_batched": (ndl.matmul, np.matmul, [_randn(2, 3, 4), _randn(2, 4, 5)]),
    "matmul_broadcast_batch": (ndl.matmul, np.matmul, [_randn(2, 1, 3, 4), _randn(5, 4, 2)]),
    "matmul_batched_by_matrix": (ndl.matmul, np.matmul, [_randn(3, 2, 4), _randn(4, 5)]),
    "negate": (ndl.negate, np.negative, [_randn(3, 4)]),
    "log": (ndl.log, np.log, [_positive(3, 4)]),
    "exp": (ndl.exp, np.exp, [_randn(3, 4)]),
    "relu": (ndl.relu, lambda a: np.maximum(a, 0), [_away_from_zero(3, 4)]),
    "tanh": (ndl.tanh, np.tanh, [_randn(3, 4)]),
    "sigmoid": (ndl.sigmoid, lambda a: 1 / (1 + np.exp(-a)), [_randn(3, 4)]),
    "logsoftmax": (ndl.logsoftmax, lambda a: a - _np_logsumexp(a, -1)[..., None], [_randn(3, 5)]),
    "logsumexp_all": (ndl.logsumexp, lambda a: _np_logsumexp(a, None), [_randn(3, 4)]),
    "logsumexp_int": (lambda a: ndl.logsumexp(a, 1), lambda a: _np_logsumexp(a, 1), [_randn(2, 3, 4)]),
    "logsumexp_tuple": (lambda a: ndl.logsumexp(a, (0, 2)), lambda a: _np_logsumexp(a, (0, 2)),
                        [_randn(2, 3, 4)]),
    # tuple ops (course hw4); items weighted differently so a mixed-up index shows in the gradient
    "stack_axis0": (lambda a, b, c: ndl.stack([a, b, c], 0), lambda a, b, c: np.stack([a, b, c], 0),
                    [_randn(3, 4), _randn(3, 4), _randn(3, 4)]),
    "stack_axis_last": (lambda a, b: ndl.stack((a, b), 2), lambda a, b: np.stack([a, b], 2),
                        [_randn(2, 3), _randn(2, 3)]),
    "stack_negative_axis": (lambda a, b: ndl.stack([a, b], -2), lambda a, b: np.stack([a, b], -2),
                            [_randn(2, 3), _randn(2, 3)]),
    "split_items": (lambda a: _weighted_items(ndl.split(a, 1)),
                    lambda a: _weighted_items([a[:, i] for i in range(a.shape[1])]), [_randn(4, 3, 2)]),
    "split_then_stack": (lambda a: ndl.stack(ndl.split(a, 0), 1), lambda a: np.swapaxes(a, 0, 1),
                         [_randn(3, 2, 2)]),
    "tuple_get_item_unfolded": (lambda a, b: ndl.TupleGetItem(1)(ndl.make_tuple(a, b), fold_const=False) * a,
                                np.multiply, [_randn(2, 3), _randn(2, 3)]),
    "fused_add_scalars": (lambda a: _product(ndl.fused_add_scalars(a, 1.5, -0.5)),
                          lambda a: (a + 1.5) * (a - 0.5), [_randn(3, 2)]),
}


def _weighted_items(items):
    """items[0] * 1 + items[1] * 2 + ... (works on Tensors and arrays)."""
    items = list(items)
    total = items[0]
    for weight, item in enumerate(items[1:], start=2):
        total = total + item * float(weight)
    return total


def _product(pair):
    return pair[0] * pair[1]


@pytest.mark.parametrize("name", FORWARD_CASES)
def test_forward_matches_numpy(name):
    fn, reference, arrays = FORWARD_CASES[name]
    out = fn(*[ndl.Tensor(a, dtype="float64") for a in arrays])
    expected = reference(*arrays)
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", FORWARD_CASES)
def test_gradient_matches_finite_differences(name):
    fn, _, arrays = FORWARD_CASES[name]
    check_gradients(fn, *arrays)


@pytest.mark.parametrize("op", [ndl.add, ndl.multiply, ndl.divide])
def test_ewise_ops_broadcast_implicitly_and_sum_gradients_back(op):
    grads = check_gradients(op, _randn(3, 1, 4), _positive(2, 1))
    assert [g.shape for g in grads] == [(3, 1, 4), (2, 1)]


class TestBroadcastAndSummationEdges:
    def test_broadcast_from_0d(self):
        grad, = check_gradients(lambda a: ndl.broadcast_to(a, (2, 3)), np.array(1.5))
        assert grad.shape == ()

    def test_broadcast_size1_axes_keeps_middle(self):
        check_gradients(lambda a: ndl.broadcast_to(a, (4, 3, 5)), _randn(4, 1, 1))

    def test_broadcast_prepends_and_expands(self):
        check_gradients(lambda a: ndl.broadcast_to(a, (2, 3, 4)), _randn(1, 4))

    def test_broadcast_gradient_value_counts_copies(self):
        x = ndl.Tensor(np.ones((1, 3)))
        ndl.broadcast_to(x, (5, 3)).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.full((1, 3), 5.0))

    def test_summation_of_0d(self):
        check_gradients(ndl.summation, np.array(2.0))

    def test_summation_over_size1_axis(self):
        out = ndl.summation(ndl.Tensor(np.ones((3, 1))), 1)
        assert out.shape == (3,)

    def test_summation_drops_all_axes_to_scalar(self):
        assert ndl.Tensor(np.ones((2, 3))).sum().shape == ()

    def test_tensor_methods_match_functions(self):
        x = ndl.Tensor(_randn(2, 3))
        np.testing.assert_allclose(x.sum((0,)).numpy(), x.numpy().sum(0), rtol=1e-6)
        assert x.reshape((3, 2)).shape == (3, 2)
        assert x.broadcast_to((4, 2, 3)).shape == (4, 2, 3)
        assert x.transpose().shape == (3, 2)


class TestMatmulEdges:
    def test_broadcast_batch_gradients_have_input_shapes(self):
        grads = check_gradients(ndl.matmul, _randn(2, 1, 3, 4), _randn(5, 4, 2))
        assert [g.shape for g in grads] == [(2, 1, 3, 4), (5, 4, 2)]

    def test_matrix_times_batch(self):
        grads = check_gradients(ndl.matmul, _randn(3, 4), _randn(2, 4, 5))
        assert [g.shape for g in grads] == [(3, 4), (2, 4, 5)]

    def test_operator_and_method(self):
        a, b = ndl.Tensor(_randn(2, 3)), ndl.Tensor(_randn(3, 4))
        np.testing.assert_allclose((a @ b).numpy(), a.matmul(b).numpy())


class TestLogSumExpStability:
    def test_forward_around_1e10(self):
        x = np.array([[1e10, 1e10 + 1e3, 1e10 - 5e3], [-1e10, -1e10, -1e10]], dtype=np.float32)
        out = ndl.logsumexp(ndl.Tensor(x), axes=(1,)).numpy()
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, _np_logsumexp(x.astype(np.float64), 1), rtol=1e-6)

    def test_gradient_around_1e10_is_softmax(self):
        x = ndl.Tensor(np.array([[1e10, 1e10]], dtype=np.float32))
        ndl.logsumexp(x, axes=1).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0.5]], rtol=1e-6)

    def test_all_minus_inf_row_does_not_nan(self):
        x = np.array([[-np.inf, -np.inf], [0.0, 0.0]], dtype=np.float32)
        with np.errstate(divide="ignore"):  # log(0) = -inf is the right answer here
            out = ndl.logsumexp(ndl.Tensor(x), axes=1).numpy()
        assert out[0] == -np.inf and np.isclose(out[1], np.log(2))

    def test_logsoftmax_large_inputs(self):
        x = np.array([[1e10, 0.0, -1e10]], dtype=np.float32)
        out = ndl.logsoftmax(ndl.Tensor(x)).numpy()
        np.testing.assert_allclose(out, [[0.0, -1e10, -2e10]], rtol=1e-6)


FLOAT32_CASES = {
    "add_py_float": lambda x: x + 1.5,
    "add_np_float64_scalar": lambda x: x + np.float64(1.5),
    "rsub": lambda x: 2.0 - x,
    "rsub_np_float64_scalar": lambda x: np.float64(2.0) - x,
    "rmul_np_float64_scalar": lambda x: np.float64(2.0) * x,
    "mul_np_float64_scalar": lambda x: x * np.float64(0.1),
    "div_int": lambda x: x / 3,
    "div_np_float64_scalar": lambda x: x / np.float64(3.0),
    "pow_float": lambda x: x ** 2.0,
    "pow_np_float64": lambda x: x ** np.float64(2.0),
    "logsumexp": lambda x: ndl.logsumexp(x, 1),
    "logsoftmax": ndl.logsoftmax,
    "relu_matmul": lambda x: ndl.relu(x @ ndl.transpose(x)),
    "summation": lambda x: x.sum(),
}


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_float32_stays_float32_forward_and_backward(name):
    x = ndl.Tensor(np.abs(_randn(3, 3)) + 0.5, dtype="float32")
    out = FLOAT32_CASES[name](x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("size", [7, 70_000])  # below and above the cached-zeros size limit
def test_relu_keeps_nan_and_maps_minus_inf_to_zero(size):
    a = np.linspace(-3, 3, size).astype(np.float32)
    a[:3] = [np.nan, -np.inf, np.inf]
    out = ndl.relu(ndl.Tensor(a)).numpy()
    assert out.dtype == np.float32 and np.isnan(out[0])
    np.testing.assert_array_equal(out[1:], np.maximum(a[1:], 0))


def test_relu_gradient_is_masked_out_grad_and_differentiable_again():
    x = ndl.Tensor([-1.0, 2.0, 3.0], dtype="float64")
    g = ndl.Tensor([5.0, 6.0, 7.0], dtype="float64")
    y = ndl.relu(x)
    y.backward(g)
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 6.0, 7.0])
    (ndl.relu(x) * x).sum().backward(create_graph=True)  # d/dx = relu(x) + x * [x > 0] = 2x on x > 0
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 4.0, 6.0])
    x.grad.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 2.0])
