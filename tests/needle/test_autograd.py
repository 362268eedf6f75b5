"""needle.autograd: Tensor semantics, graph construction, backward, leaks and a PyTorch cross-check."""
import gc
import threading

import numpy as np
import pytest

import needle as ndl
from needle import autograd


class TestTensorConstruction:
    @pytest.mark.parametrize("data, dtype", [([1.0, 2.0], np.float64), (np.array([1.0, 2.0]), np.float64),
                                             (np.float16([1, 2]), np.float16), (3.5, np.float64),
                                             (np.float32([1, 2]), np.float32), ([True], np.bool_)])
    def test_floats_keep_numpy_dtype_as_in_the_course(self, data, dtype):
        assert ndl.Tensor(data).dtype == dtype
        assert ndl.Tensor(ndl.Tensor(data)).dtype == dtype

    @pytest.mark.parametrize("data", [[1, 2, 3], np.array([1, 2], dtype=np.int32), 7])
    def test_integers_keep_an_integer_dtype(self, data):
        assert ndl.Tensor(data).dtype.kind == "i"
        assert ndl.Tensor(data).dtype == np.asarray(data).dtype

    def test_explicit_dtype_wins(self):
        assert ndl.Tensor([1.0], dtype="float64").dtype == np.float64
        assert ndl.Tensor([1, 2], dtype="float32").dtype == np.float32

    def test_copies_numpy_input(self):
        source = np.ones(3, dtype=np.float32)
        tensor = ndl.Tensor(source)
        source[0] = 5
        assert tensor.numpy()[0] == 1

    def test_tensor_of_tensor_shares_data_and_can_cast(self):
        base = ndl.Tensor([1.0, 2.0])
        same = ndl.Tensor(base)
        assert same.numpy() is base.numpy() and same.is_leaf()
        assert ndl.Tensor(base, dtype="float64").dtype == np.float64

    def test_requires_grad_defaults(self):
        assert ndl.Tensor([1.0]).requires_grad
        assert not ndl.Tensor([1.0], requires_grad=False).requires_grad
        assert not ndl.Tensor.make_const(np.ones(2)).requires_grad

    def test_shape_device_repr(self):
        tensor = ndl.Tensor(np.zeros((2, 3)))
        assert tensor.shape == (2, 3)
        assert tensor.device == ndl.cpu() and repr(ndl.cpu()) == "cpu()"
        assert ndl.all_devices() == [ndl.cpu()]
        assert repr(tensor).startswith("needle.Tensor(") and str(tensor) == str(tensor.numpy())

    def test_rejects_unknown_device(self):
        with pytest.raises(ValueError):
            ndl.Tensor([1.0], device="cuda")


class TestDataAndDetach:
    def test_data_is_detached_and_shares_array(self):
        x = ndl.Tensor([1.0, 2.0])
        y = x * 2
        assert not y.data.requires_grad and y.data.is_leaf()
        assert y.data.numpy() is y.numpy()

    def test_data_setter_keeps_dtype(self):
        x = ndl.Tensor([1.0, 2.0], dtype="float32")
        x.data = ndl.Tensor([3.0, 4.0], dtype="float64")
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x.numpy(), [3.0, 4.0])

    def test_detach(self):
        x = ndl.Tensor([1.0])
        d = (x * 3).detach()
        assert d.op is None and not d.requires_grad


class TestGraphConstruction:
    def test_results_without_grad_inputs_are_detached(self):
        a = ndl.Tensor([1.0, 2.0], requires_grad=False)
        out = ndl.exp(a * 2 + a)
        assert not out.requires_grad and out.op is None and out.inputs == ()

    def test_results_with_grad_inputs_record_graph(self):
        a = ndl.Tensor([1.0, 2.0])
        out = a * 2
        assert out.requires_grad and isinstance(out.op, ndl.ops.MulScalar) and out.inputs == (a,)

    def test_no_grad_context(self):
        a = ndl.Tensor([1.0])
        with ndl.no_grad():
            out = a + a
        assert out.op is None and autograd.is_grad_enabled()

    def test_no_grad_in_another_thread_does_not_disable_this_one(self):
        inside, release = threading.Event(), threading.Event()

        def infer():
            with ndl.no_grad():
                inside.set()
                release.wait(5)

        worker = threading.Thread(target=infer)
        worker.start()
        assert inside.wait(5)
        try:
            out = ndl.Tensor([1.0]) * 2
        finally:
            release.set()
            worker.join()
        assert out.requires_grad and out.op is not None

    def test_operators(self):
        a = ndl.Tensor([4.0, 9.0])
        b = ndl.Tensor([2.0, 3.0])
        cases = {
            "a+b": (a + b, [6, 12]), "a-b": (a - b, [2, 6]), "a*b": (a * b, [8, 27]), "a/b": (a / b, [2, 3]),
            "a**b": (a ** b, [16, 729]), "a**2": (a ** 2, [16, 81]), "-a": (-a, [-4, -9]),
            "1+a": (1 + a, [5, 10]), "2*a": (2 * a, [8, 18]), "2-a": (2 - a, [-2, -7]),
            "a-1": (a - 1, [3, 8]), "a/2": (a / 2, [2, 4.5]),
        }
        for name, (out, expected) in cases.items():
            np.testing.assert_allclose(out.numpy(), expected, err_msg=name)

    def test_topo_sort_is_post_order(self):
        a, b = ndl.Tensor([1.0]), ndl.Tensor([2.0])
        c = a * b
        d = c + a
        e = d * c
        assert autograd.find_topo_sort([e]) == [a, b, c, d, e]

    def test_deep_graph_does_not_hit_recursion_limit(self):
        x = ndl.Tensor([1.0])
        y = x
        for _ in range(5000):
            y = y + 1
        y.backward()
        np.testing.assert_array_equal(x.grad.numpy(), [1.0])


class TestBackward:
    def test_shared_node_gradients_add_up(self):
        x = ndl.Tensor([3.0])
        (x * x + x).backward()
        np.testing.assert_allclose(x.grad.numpy(), [7.0])

    def test_explicit_out_grad(self):
        x = ndl.Tensor([1.0, 2.0])
        (x * 3).backward(ndl.Tensor([1.0, 10.0]))
        np.testing.assert_allclose(x.grad.numpy(), [3.0, 30.0])

    def test_second_backward_overwrites(self):
        x = ndl.Tensor([2.0])
        (x * 5).backward()
        (x * 5).backward()
        np.testing.assert_allclose(x.grad.numpy(), [5.0])  # documented: no accumulation

    def test_only_leaves_get_grad_and_grads_are_detached(self):
        x = ndl.Tensor([2.0])
        h = ndl.exp(x)
        (h * x).backward()
        assert h.grad is None
        assert x.grad.op is None and not x.grad.requires_grad

    def test_inputs_without_requires_grad_get_no_grad(self):
        x, c = ndl.Tensor([2.0]), ndl.Tensor([3.0], requires_grad=False)
        (x * c).backward()
        assert c.grad is None and x.grad is not None

    def test_gradient_of_gradient_with_create_graph(self):
        x = ndl.Tensor([1.5, -2.0], dtype="float64")
        (x ** 3).sum().backward(create_graph=True)
        first = x.grad
        np.testing.assert_allclose(first.numpy(), 3 * x.numpy() ** 2)
        first.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())

    def test_node_used_three_times_sums_all_partials(self):
        x = ndl.Tensor([2.0, -1.0])
        (x * 2 + x * 3 + x * x).backward()
        np.testing.assert_allclose(x.grad.numpy(), 5 + 2 * x.numpy())

    def test_leaf_created_after_the_nodes_it_joins(self):
        a = ndl.Tensor([1.5])
        b = ndl.exp(a)
        w = ndl.Tensor([4.0])  # newer than b: reverse creation order must still be a valid order
        (b * w + a * w).backward()
        np.testing.assert_allclose(a.grad.numpy(), np.exp(1.5) * 4 + 4, rtol=1e-6)
        np.testing.assert_allclose(w.grad.numpy(), np.exp(1.5) + 1.5, rtol=1e-6)

    def test_copied_tensors_backpropagate(self):
        import copy
        a = ndl.Tensor([2.0])
        b = a * 3
        b_copy = copy.copy(b)  # a distinct node with the same op and inputs
        (b * b_copy).backward()
        np.testing.assert_allclose(a.grad.numpy(), [36.0])  # d(9 a^2)/da

    def test_summed_partials_stay_differentiable_with_create_graph(self):
        x = ndl.Tensor([0.5, 2.0], dtype="float64")
        (x * x + x * x * x).sum().backward(create_graph=True)  # x receives several partials
        first = x.grad
        np.testing.assert_allclose(first.numpy(), 2 * x.numpy() + 3 * x.numpy() ** 2)
        first.sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 + 6 * x.numpy())

    def test_gradient_of_gradient_course_example(self):
        x2, x3 = ndl.Tensor([6.0]), ndl.Tensor([0.0])
        y = x2 * x2 + x2 * x3
        y.backward(create_graph=True)
        grad_x2, grad_x3 = x2.grad, x3.grad
        grad_x2.backward()  # d(2*x2 + x3)/dx2 = 2, /dx3 = 1
        assert grad_x2.numpy() == 12 and grad_x3.numpy() == 6
        assert x2.grad.numpy() == 2 and x3.grad.numpy() == 1

    def test_gradient_of_gradient_through_op_gradient(self):
        x = ndl.Tensor([0.5, 1.0], dtype="float64")
        y = ndl.logsumexp(x * x, axes=0)
        softmax, = y.op.gradient_as_tuple(ndl.Tensor(1.0, dtype="float64"), y)  # d lse / d(x^2)
        (softmax * x).sum().backward()

        def f(v):  # sum(softmax(v^2) * v), differentiated by finite differences below
            s = np.exp(v ** 2) / np.exp(v ** 2).sum()
            return np.sum(s * v)
        eps = 1e-6
        numeric = [(f(x.numpy() + eps * e) - f(x.numpy() - eps * e)) / (2 * eps) for e in np.eye(2)]
        np.testing.assert_allclose(x.grad.numpy(), numeric, rtol=1e-6)


def _train_step(weights, x):
    hidden = ndl.relu(x @ weights[0])
    loss = ndl.logsumexp(hidden @ weights[1], axes=(1,)).sum() / x.shape[0]
    loss.backward()


class TestNoLeaks:
    def test_tensor_counter_returns_to_baseline(self):
        weights = [ndl.Tensor(np.random.randn(4, 8)), ndl.Tensor(np.random.randn(8, 3))]
        x = ndl.Tensor(np.random.randn(5, 4), requires_grad=False)
        _train_step(weights, x)  # first step creates the persistent .grad tensors
        gc.collect()
        baseline = autograd.TENSOR_COUNTER
        for _ in range(3):
            _train_step(weights, x)
        gc.collect()
        assert autograd.TENSOR_COUNTER == baseline

    def test_graph_is_freed_without_garbage_collector(self):
        x = ndl.Tensor(np.random.randn(3, 3))
        before = autograd.TENSOR_COUNTER
        loss = ndl.exp(x @ x).sum()
        loss.backward()
        del loss
        assert autograd.TENSOR_COUNTER == before + 1  # only x.grad remains (refcounting frees the rest)

    def test_leaf_and_grad_form_no_reference_cycle(self):
        gc.disable()  # everything must be freed by reference counting alone
        try:
            before = autograd.TENSOR_COUNTER
            x = ndl.Tensor(np.random.randn(4))
            loss = (x * x).sum()
            loss.backward()
            del x, loss
            assert autograd.TENSOR_COUNTER == before
        finally:
            gc.enable()

    def test_counter_tracks_creation_and_deletion(self):
        before = autograd.TENSOR_COUNTER
        tensors = [ndl.Tensor([1.0]) for _ in range(10)]
        assert autograd.TENSOR_COUNTER == before + 10
        del tensors
        assert autograd.TENSOR_COUNTER == before


def test_lazy_mode_defers_compute(monkeypatch):
    monkeypatch.setattr(autograd, "LAZY_MODE", True)
    x = ndl.Tensor([1.0, 2.0])
    y = x * 3
    assert y.cached_data is None
    np.testing.assert_allclose(y.numpy(), [3.0, 6.0])


def test_gradients_match_pytorch_on_composite_graph():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    arrays = {"x": rng.standard_normal((4, 5)), "w": rng.standard_normal((5, 3)),
              "b": rng.standard_normal((1, 3)), "s": rng.uniform(0.5, 1.5, (4, 3))}

    def composite(lib, t):
        h = lib["relu"](t["x"] @ t["w"] + t["b"])
        z = lib["log"](h * h + t["s"]) / t["s"] - 2 * h
        return (lib["lse"](z) ** 2).sum() * 0.5

    nd = {k: ndl.Tensor(v, dtype="float64") for k, v in arrays.items()}
    th = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    nd_lib = {"relu": ndl.relu, "log": ndl.log, "lse": lambda z: ndl.logsumexp(z, axes=(1,))}
    th_lib = {"relu": torch.relu, "log": torch.log, "lse": lambda z: torch.logsumexp(z, dim=1)}
    nd_loss, th_loss = composite(nd_lib, nd), composite(th_lib, th)
    nd_loss.backward()
    th_loss.backward()
    np.testing.assert_allclose(nd_loss.numpy(), th_loss.detach().numpy(), rtol=1e-10)
    for key in arrays:
        np.testing.assert_allclose(nd[key].grad.numpy(), th[key].grad.numpy(), rtol=1e-8, atol=1e-10)
