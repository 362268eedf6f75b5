"""Code written against the course's needle (hw1, hw2, hw4) runs unchanged and gives the same numbers.

The course's checks build Tensors from Python floats and `np.random.randn` (float64), compare
forward results with numpy's default rtol 1e-7 and check gradients with its own `gradient_check`
(central differences, eps 1e-4, summed error norm below 1e-6): all of that fails in float32.
"""
import math

import numpy as np
import pytest

import needle as ndl


def gradient_check(f, *args, tol=1e-6, backward=False, **kwargs):
    """The course's hw1 gradient check, as its tests call it (mutates the inputs' arrays in place)."""
    eps = 1e-4
    numerical_grads = [np.zeros(a.shape) for a in args]
    for i in range(len(args)):
        for j in range(args[i].realize_cached_data().size):
            args[i].realize_cached_data().flat[j] += eps
            f1 = float(f(*args, **kwargs).numpy().sum())
            args[i].realize_cached_data().flat[j] -= 2 * eps
            f2 = float(f(*args, **kwargs).numpy().sum())
            args[i].realize_cached_data().flat[j] += eps
            numerical_grads[i].flat[j] = (f1 - f2) / (2 * eps)
    if not backward:
        out = f(*args, **kwargs)
        computed_grads = [x.numpy() for x in out.op.gradient_as_tuple(ndl.Tensor(np.ones(out.shape)), out)]
    else:
        out = f(*args, **kwargs).sum()
        out.backward()
        computed_grads = [a.grad.numpy() for a in args]
    error = sum(np.linalg.norm(computed_grads[i] - numerical_grads[i]) for i in range(len(args)))
    assert error < tol
    return computed_grads


class TestHw1Forward:
    """Inputs as Python lists: float64 Tensors, compared at numpy's default rtol 1e-7."""

    def test_divide_scalar(self):
        out = ndl.divide_scalar(ndl.Tensor([[1.7, 1.45]]), scalar=12)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.numpy(), [[1.7 / 12, 1.45 / 12]])

    def test_divide(self):
        a, b = [[3.3, 4.35, 1.2], [2.45, 0.95, 2.55]], [[4.6, 4.35, 4.8], [0.65, 0.7, 4.4]]
        out = ndl.divide(ndl.Tensor(a), ndl.Tensor(b)).numpy()
        np.testing.assert_allclose(out, [[x / y for x, y in zip(ra, rb)] for ra, rb in zip(a, b)])

    def test_power_and_log_and_exp(self):
        np.testing.assert_allclose(ndl.power_scalar(ndl.Tensor([[0.5, 2.0, 3.0]]), scalar=2).numpy(),
                                   [[0.25, 4.0, 9.0]])
        np.testing.assert_allclose(ndl.log(ndl.Tensor([[4.0], [4.55]])).numpy(),
                                   [[math.log(4.0)], [math.log(4.55)]])
        np.testing.assert_allclose(ndl.exp(ndl.Tensor([[4.0], [4.55]])).numpy(),
                                   [[math.exp(4.0)], [math.exp(4.55)]])

    def test_summation_and_matmul(self):
        rows = [[2.2, 4.35, 1.4, 0.3, 2.65], [1.0, 0.85, 2.75, 3.8, 1.85], [3.2, 2.3, 3.45, 0.7, 0.0]]
        np.testing.assert_allclose(ndl.summation(ndl.Tensor(rows)).numpy(), math.fsum(sum(rows, [])))
        a, b = [[4.95, 1.75], [0.25, 0.55]], [[2.45, 4.4], [0.35, 1.3]]
        expected = [[sum(a[i][k] * b[k][j] for k in range(2)) for j in range(2)] for i in range(2)]
        np.testing.assert_allclose(ndl.matmul(ndl.Tensor(a), ndl.Tensor(b)).numpy(), expected)

    def test_a_small_step_differs_from_float32(self):
        """1 + 1e-9 survives in float64 (the course's default here), not in float32."""
        assert (ndl.Tensor([1.0]) + 1e-9).numpy()[0] != 1.0
        assert (ndl.Tensor([1.0], dtype="float32") + 1e-9).numpy()[0] == 1.0


HW1_GRADIENT_CASES = {
    "divide": (ndl.divide, [(5, 4), (5, 4)], {}),
    "divide_scalar": (ndl.divide_scalar, [(5, 4)], {"scalar": np.random.default_rng(0).standard_normal()}),
    "power_scalar": (ndl.power_scalar, [(5, 4)], {"scalar": 3}),
    "matmul": (ndl.matmul, [(5, 4), (4, 5)], {}),
    "matmul_batched": (ndl.matmul, [(6, 6, 5, 4), (6, 6, 4, 3)], {}),
    "matmul_broadcast": (ndl.matmul, [(6, 6, 5, 4), (4, 3)], {}),
    "summation_axes": (ndl.summation, [(5, 4, 1)], {"axes": (0, 1)}),
    "broadcast_to": (ndl.broadcast_to, [(3, 1)], {"shape": (3, 3)}),
    "reshape": (ndl.reshape, [(5, 4)], {"shape": (4, 5)}),
    "negate": (ndl.negate, [(5, 4)], {}),
    "transpose": (ndl.transpose, [(3, 5, 4)], {"axes": (0, 1)}),
    "log": (ndl.log, [(5, 4)], {}),
    "logsumexp": (ndl.logsumexp, [(3, 4, 5)], {"axes": (0, 2)}),
    "stack": (lambda *a: ndl.stack(a, axis=1), [(5, 4), (5, 4), (5, 4)], {}),
}


# Stack's input is a TensorTuple, so its op.gradient is checked through backward only
@pytest.mark.parametrize("name, backward", [(name, backward) for name in HW1_GRADIENT_CASES
                                            for backward in (False, True) if backward or name != "stack"])
def test_course_gradient_check_passes(name, backward):
    fn, shapes, kwargs = HW1_GRADIENT_CASES[name]
    rng = np.random.default_rng(len(name))
    # log needs positive inputs and the course shifts divisors away from zero
    arrays = [rng.standard_normal(s) + (5 if name in ("divide", "log") and i == len(shapes) - 1 else 0)
              for i, s in enumerate(shapes)]
    gradient_check(fn, *[ndl.Tensor(a) for a in arrays], backward=backward, **kwargs)


def test_course_gradient_check_fails_in_float32():
    """The reason for the dtype semantics: the same check cannot pass with float32 inputs."""
    x = ndl.Tensor(np.random.default_rng(1).standard_normal((5, 4)), dtype="float32")
    with pytest.raises(AssertionError):
        gradient_check(ndl.log, ndl.Tensor(np.abs(x.numpy()) + 1, dtype="float32"))


class TestHw4Tuples:
    def test_make_tuple_and_get_item(self):
        a, b = ndl.Tensor([1.0, 2.0]), ndl.Tensor([[3.0]])
        pair = ndl.make_tuple(a, b)
        assert isinstance(pair, ndl.TensorTuple) and len(pair) == 2
        assert pair[1] is b  # constant folding through make_tuple, as the course
        unfolded = ndl.TupleGetItem(0)(pair, fold_const=False)
        np.testing.assert_array_equal(unfolded.numpy(), [1.0, 2.0])
        assert [t.shape for t in pair.tuple()] == [(2,), (1, 1)]
        assert "TensorTuple" in repr(pair)

    def test_tuple_add_is_item_wise(self):
        pair = ndl.make_tuple(ndl.Tensor([1.0]), ndl.Tensor([2.0])) + ndl.make_tuple(ndl.Tensor([3.0]),
                                                                                     ndl.Tensor([4.0]))
        assert [float(t.numpy()[0]) for t in pair] == [4.0, 6.0]
        with pytest.raises(ValueError):
            pair + ndl.make_tuple(ndl.Tensor([1.0]))

    def test_gradient_through_a_tuple_reaches_each_item(self):
        a, b = ndl.Tensor([1.0, 2.0]), ndl.Tensor([3.0, 4.0])
        pair = ndl.make_tuple(a, b)
        out = ndl.TupleGetItem(0)(pair, fold_const=False) * 2 + ndl.TupleGetItem(1)(pair, fold_const=False) * 3
        out.sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), [2.0, 2.0])
        np.testing.assert_array_equal(b.grad.numpy(), [3.0, 3.0])

    def test_split_unused_items_get_zero_gradient(self):
        x = ndl.Tensor(np.arange(6.0).reshape(3, 2))
        ndl.split(x, 0)[1].sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [[0, 0], [1, 1], [0, 0]])

    def test_stack_accepts_a_tensor_tuple_and_checks_shapes(self):
        parts = ndl.split(ndl.Tensor(np.arange(6.0).reshape(2, 3)), 1)
        np.testing.assert_array_equal(ndl.stack(parts, 1).numpy(), np.arange(6.0).reshape(2, 3))
        with pytest.raises(ValueError):
            ndl.stack([ndl.Tensor([1.0]), ndl.Tensor([1.0, 2.0])], 0)

    def test_gradient_of_gradient_through_stack(self):
        x = ndl.Tensor([1.0, 2.0])
        (ndl.stack([x * x, x], 0).sum()).backward(create_graph=True)  # d/dx = 2x + 1
        np.testing.assert_array_equal(x.grad.numpy(), [3.0, 5.0])
        x.grad.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


class TestModulesAndOptimizers:
    def test_init_and_modules_default_to_float32(self):
        assert ndl.init.rand(2, 2).dtype == np.float32 and ndl.init.kaiming_uniform(3, 2).dtype == np.float32
        assert {p.dtype for p in ndl.models.MLPResNet(4, 8, 1, 3).parameters()} == {np.dtype("float32")}

    @pytest.mark.parametrize("make_opt", [lambda p: ndl.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
                                          lambda p: ndl.optim.Adam(p, lr=0.01, weight_decay=0.01)])
    def test_optimizers_never_change_a_parameter_dtype(self, make_opt):
        np.random.seed(0)
        model = ndl.models.MLPResNet(4, 8, 1, 3)
        opt = make_opt(model.parameters())
        x = ndl.Tensor(np.random.randn(6, 4))  # float64 data: the forward pass promotes to float64
        for _ in range(2):
            opt.reset_grad()
            loss = ndl.nn.SoftmaxLoss()(model(x), ndl.Tensor(np.arange(6) % 3))
            assert loss.dtype == np.float64
            loss.backward()
            assert model.parameters()[0].grad.dtype == np.float64
            opt.step()
        assert {p.dtype for p in model.parameters()} == {np.dtype("float32")}
        assert {b.dtype for bufs in opt.state.values() for b in bufs.values()} == {np.dtype("float32")}

    def test_a_float64_model_trains_in_float64(self):
        np.random.seed(0)
        model = ndl.nn.Sequential(ndl.nn.Linear(3, 4, dtype="float64"), ndl.nn.BatchNorm1d(4, dtype="float64"),
                                  ndl.nn.ReLU(), ndl.nn.Linear(4, 2, dtype="float64"))
        opt = ndl.optim.Adam(model.parameters(), lr=0.01)
        loss = ndl.nn.SoftmaxLoss()(model(ndl.Tensor(np.random.randn(5, 3))), ndl.Tensor([0, 1, 0, 1, 1]))
        loss.backward()
        opt.step()
        assert {a.dtype for a in model.state_dict().values()} == {np.dtype("float64")}
