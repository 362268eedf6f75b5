"""Fused ops: equal to their composite definitions (float32) and correct by finite differences (float64)."""
import numpy as np
import pytest

import needle as ndl

from .gradcheck import check_gradients

RNG = np.random.default_rng(7)
EPS = 1e-5


def _row(t, shape):
    """Broadcast a (D,) or (1, D) parameter to shape (composite-definition helper)."""
    return ndl.broadcast_to(ndl.reshape(t, (1,) * (len(shape) - 1) + (shape[-1],)), shape)


def linear_composite(x, w, b=None):
    out = x @ w
    return out if b is None else out + _row(b, out.shape)


def batchnorm_composite(x, w, b, eps=EPS):
    n, d = x.shape
    mean = ndl.broadcast_to(ndl.reshape(x.sum((0,)) / n, (1, d)), x.shape)
    centered = x - mean
    var = ndl.broadcast_to(ndl.reshape((centered ** 2).sum((0,)) / n, (1, d)), x.shape)
    return _row(w, x.shape) * centered / (var + eps) ** 0.5 + _row(b, x.shape)


def layernorm_composite(x, w, b, eps=EPS):
    d = x.shape[-1]
    keep = x.shape[:-1] + (1,)
    mean = ndl.broadcast_to(ndl.reshape(x.sum((len(x.shape) - 1,)) / d, keep), x.shape)
    centered = x - mean
    var = ndl.broadcast_to(ndl.reshape((centered ** 2).sum((len(x.shape) - 1,)) / d, keep), x.shape)
    return _row(w, x.shape) * centered / (var + eps) ** 0.5 + _row(b, x.shape)


def softmax_loss_composite(logits, y):
    n, k = logits.shape
    one_hot = ndl.init.one_hot(k, y, dtype=logits.dtype)
    return (ndl.logsumexp(logits, (1,)) - (logits * one_hot).sum((1,))).sum() / n


def _seeded(fn, seed=11):
    """fn with np.random reseeded before each call, so an op that draws a mask draws the same one."""
    def call(*args):
        np.random.seed(seed)
        return fn(*args)
    return call


def _relu_dropout_composite(x, p, relu=True):
    keep = np.random.rand(*x.shape) <= 1 - p  # the same draw as the fused ops make
    out = ndl.relu(x) if relu else x
    return out * ndl.Tensor(keep / (1 - p), dtype=x.dtype, requires_grad=False)


LABELS = RNG.integers(0, 5, size=6)
DROP_MASK = (RNG.random((6, 4)) > 0.3) / 0.7


def _away_from_zero(*shape):
    return RNG.uniform(0.1, 1.5, shape) * RNG.choice([-1.0, 1.0], shape)


# name -> (fused fn, composite fn, input arrays)
CASES = {
    "linear": (ndl.linear, linear_composite, [RNG.standard_normal((6, 4)), RNG.standard_normal((4, 3)),
                                              RNG.standard_normal((1, 3))]),
    "linear_no_bias": (ndl.linear, linear_composite, [RNG.standard_normal((6, 4)), RNG.standard_normal((4, 3))]),
    "linear_3d": (ndl.linear, linear_composite, [RNG.standard_normal((2, 3, 4)), RNG.standard_normal((4, 5)),
                                                 RNG.standard_normal((5,))]),
    "batchnorm": (lambda x, w, b: ndl.batchnorm_train(x, w, b, EPS), batchnorm_composite,
                  [RNG.standard_normal((8, 4)) * 3 + 1, RNG.standard_normal((4,)), RNG.standard_normal((4,))]),
    "batchnorm_2d_params": (lambda x, w, b: ndl.batchnorm_train(x, w, b, EPS), batchnorm_composite,
                            [RNG.standard_normal((5, 3)), RNG.standard_normal((1, 3)),
                             RNG.standard_normal((1, 3))]),
    "layernorm": (lambda x, w, b: ndl.layernorm(x, w, b, EPS), layernorm_composite,
                  [RNG.standard_normal((5, 6)) * 2 - 1, RNG.standard_normal((6,)), RNG.standard_normal((6,))]),
    "layernorm_3d": (lambda x, w, b: ndl.layernorm(x, w, b, EPS), layernorm_composite,
                     [RNG.standard_normal((2, 3, 4)), RNG.standard_normal((1, 4)), RNG.standard_normal((1, 4))]),
    "softmax_loss": (lambda z: ndl.softmax_loss(z, LABELS), lambda z: softmax_loss_composite(z, LABELS),
                     [RNG.standard_normal((6, 5)) * 3]),
    "softmax_loss_tensor_labels": (lambda z: ndl.softmax_loss(z, ndl.Tensor(LABELS)),
                                   lambda z: softmax_loss_composite(z, LABELS), [RNG.standard_normal((6, 5))]),
    "dropout": (lambda x: ndl.dropout(x, DROP_MASK), lambda x: x * ndl.Tensor(DROP_MASK, dtype=x.dtype),
                [RNG.standard_normal((6, 4))]),
    "relu_dropout": (lambda x: ndl.relu_dropout(x, DROP_MASK),
                     lambda x: ndl.relu(x) * ndl.Tensor(DROP_MASK, dtype=x.dtype), [_away_from_zero(6, 4)]),
    # fused block ops that draw their dropout mask: seeded, so every evaluation draws the same mask
    "batchnorm_relu_dropout": (_seeded(lambda x, w, b: ndl.batchnorm_train(x, w, b, EPS, relu=True, drop_p=0.25)),
                               _seeded(lambda x, w, b: _relu_dropout_composite(batchnorm_composite(x, w, b), 0.25)),
                               [_away_from_zero(8, 4) * 2, RNG.uniform(0.5, 1.5, 4), RNG.standard_normal(4)]),
    "batchnorm_relu": (lambda x, w, b: ndl.batchnorm_train(x, w, b, EPS, relu=True),
                       lambda x, w, b: ndl.relu(batchnorm_composite(x, w, b)),
                       [_away_from_zero(8, 4) * 2, RNG.uniform(0.5, 1.5, 4), RNG.standard_normal(4)]),
    "random_dropout": (_seeded(lambda x: ndl.random_dropout(x, 0.3)),
                       _seeded(lambda x: _relu_dropout_composite(x, 0.3, relu=False)), [RNG.standard_normal((6, 4))]),
    "random_relu_dropout": (_seeded(lambda x: ndl.random_dropout(x, 0.3, relu=True)),
                            _seeded(lambda x: _relu_dropout_composite(x, 0.3)), [_away_from_zero(6, 4)]),
    "add_relu": (ndl.add_relu, lambda a, b: ndl.relu(a + b), [_away_from_zero(5, 3), _away_from_zero(5, 3) * 0.3]),
}


@pytest.mark.parametrize("name", CASES)
def test_gradient_by_finite_differences(name):
    fused, _, arrays = CASES[name]
    check_gradients(fused, *arrays)


@pytest.mark.parametrize("name", CASES)
def test_matches_composite_in_float32(name):
    fused, composite, arrays = CASES[name]
    results = []
    for fn in (fused, composite):
        tensors = [ndl.Tensor(a, dtype="float32") for a in arrays]
        out = fn(*tensors)
        projection = ndl.Tensor(np.linspace(-1, 1, out.numpy().size).reshape(out.shape), dtype="float32")
        (out * projection).sum().backward()
        results.append((out, [t.grad for t in tensors]))
    (fused_out, fused_grads), (composite_out, composite_grads) = results
    assert fused_out.dtype == np.float32 and fused_out.shape == composite_out.shape
    np.testing.assert_allclose(fused_out.numpy(), composite_out.numpy(), rtol=1e-4, atol=1e-5)
    for fused_grad, composite_grad in zip(fused_grads, composite_grads):
        assert fused_grad.dtype == np.float32
        np.testing.assert_allclose(fused_grad.numpy(), composite_grad.numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", CASES)
def test_inputs_are_not_modified(name):
    fused, _, arrays = CASES[name]
    tensors = [ndl.Tensor(a, dtype="float32") for a in arrays]
    before = [t.numpy().copy() for t in tensors]
    fused(*tensors).sum().backward()
    for tensor, original in zip(tensors, before):
        np.testing.assert_array_equal(tensor.numpy(), original)


def test_batchnorm_stats_are_batch_mean_and_biased_variance():
    x = RNG.standard_normal((10, 3)).astype(np.float32) * 2 + 5
    ones, zeros = ndl.init.ones(3), ndl.init.zeros(3)
    out, mean, var = ndl.batchnorm_train_stats(ndl.Tensor(x), ones, zeros, 1e-5)
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, x.var(0), rtol=1e-4)
    assert mean.shape == var.shape == (3,) and mean.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4, atol=1e-5)


def test_softmax_loss_is_stable_for_large_logits():
    logits = np.array([[1e10, 0.0], [0.0, 1e10]], dtype=np.float32)
    loss = ndl.softmax_loss(ndl.Tensor(logits), np.array([0, 0]))
    np.testing.assert_allclose(loss.numpy(), 5e9, rtol=1e-6)


def test_softmax_loss_accepts_float_label_tensor():
    logits = ndl.Tensor(RNG.standard_normal((4, 3)))
    as_float = ndl.softmax_loss(logits, ndl.Tensor([0.0, 2.0, 1.0, 1.0]))
    as_int = ndl.softmax_loss(logits, np.array([0, 2, 1, 1]))
    np.testing.assert_allclose(as_float.numpy(), as_int.numpy())


@pytest.mark.parametrize("labels", [[0, 1, 3], [0, -1, 2], [0, 1]])
def test_softmax_loss_rejects_bad_labels(labels):
    with pytest.raises(ValueError):
        ndl.softmax_loss(ndl.Tensor(np.zeros((3, 3))), np.array(labels))


def test_linear_skips_gradient_of_data_batch():
    x = ndl.Tensor(RNG.standard_normal((3, 4)), requires_grad=False)
    w = ndl.Tensor(RNG.standard_normal((4, 2)))
    out = ndl.linear(x, w)
    assert out.op.gradient_as_tuple(ndl.init.ones(3, 2), out)[0] is None
    out.sum().backward()
    assert x.grad is None and w.grad.shape == (4, 2)


def test_fused_graph_is_freed_after_backward():
    from needle import autograd
    x = ndl.Tensor(RNG.standard_normal((8, 4)), requires_grad=False)
    w, b = ndl.Tensor(RNG.standard_normal((4, 3))), ndl.Tensor(np.zeros((1, 3)))
    gamma, beta = ndl.init.ones(3, requires_grad=True), ndl.init.zeros(3, requires_grad=True)
    mask = np.ones((8, 3))
    before = autograd.TENSOR_COUNTER
    hidden = ndl.relu_dropout(ndl.batchnorm_train(ndl.linear(x, w, b), gamma, beta, EPS), mask)
    loss = ndl.softmax_loss(ndl.layernorm(hidden, gamma, beta, EPS), np.arange(8) % 3)
    loss.backward()
    del loss, hidden
    assert autograd.TENSOR_COUNTER == before + 4  # just the four parameter .grad tensors


def test_fused_ops_match_pytorch():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = RNG.standard_normal((7, 4))
    w, b = RNG.standard_normal((4,)), RNG.standard_normal((4,))
    labels = RNG.integers(0, 4, 7)
    nd_x = ndl.Tensor(x, dtype="float64")
    th_x = torch.tensor(x, requires_grad=True)
    nd_loss = ndl.softmax_loss(ndl.layernorm(ndl.batchnorm_train(nd_x, ndl.Tensor(w, dtype="float64"),
                                                                  ndl.Tensor(b, dtype="float64"), EPS),
                                             ndl.init.ones(4, dtype="float64"),
                                             ndl.init.zeros(4, dtype="float64"), EPS), labels)
    th_bn = functional.batch_norm(th_x, None, None, torch.tensor(w), torch.tensor(b), training=True, eps=EPS)
    th_loss = functional.cross_entropy(functional.layer_norm(th_bn, (4,), eps=EPS), torch.tensor(labels))
    nd_loss.backward()
    th_loss.backward()
    np.testing.assert_allclose(nd_loss.numpy(), th_loss.item(), rtol=1e-9)
    np.testing.assert_allclose(nd_x.grad.numpy(), th_x.grad.numpy(), rtol=1e-7, atol=1e-10)
