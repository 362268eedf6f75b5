"""needle.nn modules against numpy references: values, gradients, modes, parameter discovery."""
import numpy as np
import pytest

import needle as ndl
from needle import nn


def tensor(array, requires_grad=True):
    return ndl.Tensor(np.asarray(array, dtype=np.float32), requires_grad=requires_grad)


def course_kaiming_uniform(fan_in, fan_out):
    """Course init: U(-b, b) with b = sqrt(2) * sqrt(3 / fan_in), one np.random.rand call."""
    bound = np.sqrt(2.0) * np.sqrt(3.0 / fan_in)
    return np.random.rand(fan_in, fan_out) * 2 * bound - bound


def test_linear_reproduces_course_init_and_forward_backward():
    np.random.seed(1)
    expected_w = course_kaiming_uniform(3, 4)
    expected_b = course_kaiming_uniform(4, 1).reshape(1, 4)
    np.random.seed(1)
    layer = nn.Linear(3, 4)
    assert isinstance(layer.weight, nn.Parameter) and isinstance(layer.bias, nn.Parameter)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (1, 4)
    assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
    np.testing.assert_allclose(layer.weight.numpy(), expected_w, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), expected_b, rtol=1e-6)
    x = np.random.randn(5, 3).astype(np.float32)
    out = layer(tensor(x))
    np.testing.assert_allclose(out.numpy(), x @ expected_w + expected_b, rtol=1e-5, atol=1e-6)
    ndl.ops.summation(out).backward()
    np.testing.assert_allclose(layer.weight.grad.numpy(), x.T @ np.ones((5, 4)), rtol=1e-5)
    np.testing.assert_allclose(layer.bias.grad.numpy(), np.full((1, 4), 5.0), rtol=1e-6)


def test_linear_without_bias():
    layer = nn.Linear(2, 3, bias=False)
    assert layer.bias is None and len(layer.parameters()) == 1
    x = np.ones((1, 2), dtype=np.float32)
    np.testing.assert_allclose(layer(tensor(x)).numpy(), x @ layer.weight.numpy(), rtol=1e-6)


def test_identity_relu_flatten_residual_sequential():
    x = np.random.randn(2, 3, 4).astype(np.float32)
    np.testing.assert_array_equal(nn.Identity()(tensor(x)).numpy(), x)
    np.testing.assert_array_equal(nn.ReLU()(tensor(x)).numpy(), np.maximum(x, 0))
    np.testing.assert_array_equal(nn.Flatten()(tensor(x)).numpy(), x.reshape(2, 12))
    np.testing.assert_allclose(nn.Residual(nn.ReLU())(tensor(x)).numpy(), np.maximum(x, 0) + x)
    seq = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert len(seq.modules) == 2
    np.testing.assert_array_equal(seq(tensor(x)).numpy(), np.maximum(x.reshape(2, 12), 0))


def test_softmax_loss_value_and_gradient():
    logits = np.random.randn(6, 4).astype(np.float32)
    y = np.array([0, 3, 1, 1, 2, 0], dtype=np.uint8)
    x = tensor(logits)
    loss = nn.SoftmaxLoss()(x, ndl.Tensor(y, requires_grad=False))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss.numpy(), -log_probs[np.arange(6), y].mean(), rtol=1e-5)
    loss.backward()
    one_hot = np.eye(4)[y]
    np.testing.assert_allclose(x.grad.numpy(), (np.exp(log_probs) - one_hot) / 6, rtol=1e-4, atol=1e-6)


def batchnorm_reference(x, w, b, eps):
    """(output, x_hat, std) with batch statistics and biased variance."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    std = np.sqrt(var + eps)
    x_hat = (x - mean) / std
    return x_hat * w + b, x_hat, std


def test_batchnorm_training_forward_backward():
    np.random.seed(0)
    x = (np.random.randn(8, 3) * 2 + 1).astype(np.float32)
    bn = nn.BatchNorm1d(3)
    w = np.array([1.0, 2.0, -0.5], dtype=np.float32)
    bn.weight.cached_data = w.copy()
    bn.bias.cached_data = np.array([0.0, 1.0, 3.0], dtype=np.float32)
    dy = np.random.randn(8, 3).astype(np.float32)
    xt = tensor(x)
    out = bn(xt)
    expected, x_hat, std = batchnorm_reference(x, w, np.array([0.0, 1.0, 3.0]), 1e-5)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)
    ndl.ops.summation(ndl.ops.multiply(out, tensor(dy, requires_grad=False))).backward()
    # Closed-form batch-norm backward.
    n = x.shape[0]
    dx = w / std / n * (n * dy - dy.sum(axis=0) - x_hat * (dy * x_hat).sum(axis=0))
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.weight.grad.numpy(), (dy * x_hat).sum(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.bias.grad.numpy(), dy.sum(axis=0), rtol=1e-5, atol=1e-5)


def test_batchnorm_running_statistics_and_eval():
    np.random.seed(0)
    batches = [np.random.randn(5, 2).astype(np.float32) * s + s for s in (1.0, 3.0)]
    bn = nn.BatchNorm1d(2, momentum=0.25)
    assert [p is bn.weight or p is bn.bias for p in bn.parameters()] == [True, True]
    assert not isinstance(bn.running_mean, nn.Parameter) and not isinstance(bn.running_var, nn.Parameter)
    mean, var = np.zeros(2), np.ones(2)
    for batch in batches:
        bn(tensor(batch))
        mean = 0.75 * mean + 0.25 * batch.mean(axis=0)
        var = 0.75 * var + 0.25 * batch.var(axis=0)  # biased batch variance, as in the course
    for running, expected in ((bn.running_mean, mean), (bn.running_var, var)):
        assert running.dtype == np.float32 and not running.requires_grad
        np.testing.assert_allclose(running.numpy(), expected, rtol=1e-5)
    bn.eval()
    x = np.random.randn(4, 2).astype(np.float32)
    out = bn(tensor(x)).numpy()
    np.testing.assert_allclose(out, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    # In eval one sample's output does not depend on the rest of the batch, and stats stay fixed.
    np.testing.assert_allclose(bn(tensor(x[:1])).numpy(), out[:1], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5)


def test_batchnorm_eval_gradients_reach_weight_and_bias_only():
    bn = nn.BatchNorm1d(3)
    mean, var = np.array([1.0, -2.0, 0.5], dtype=np.float32), np.array([4.0, 0.25, 1.0], dtype=np.float32)
    bn.load_state_dict({"weight": np.array([2.0, 1.0, -1.0]), "bias": np.array([0.0, 1.0, 2.0]),
                        "running_mean": mean, "running_var": var})
    bn.eval()
    x = np.random.randn(5, 3).astype(np.float32)
    xt = tensor(x)
    dy = np.random.randn(5, 3).astype(np.float32)
    ndl.ops.summation(ndl.ops.multiply(bn(xt), tensor(dy, requires_grad=False))).backward()
    x_hat = (x - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(bn.weight.grad.numpy(), (dy * x_hat).sum(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.bias.grad.numpy(), dy.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), dy * np.array([2.0, 1.0, -1.0]) / np.sqrt(var + 1e-5), rtol=1e-4)
    assert bn.running_mean.grad is None and bn.running_var.grad is None


def test_layernorm_forward_backward():
    np.random.seed(2)
    x = (np.random.randn(4, 5) * 3).astype(np.float32)
    ln = nn.LayerNorm1d(5)
    assert ln.weight.shape == (5,) and ln.bias.shape == (5,)
    w = np.linspace(0.5, 1.5, 5).astype(np.float32)
    ln.weight.cached_data = w.copy()
    xt = tensor(x)
    out = ln(xt)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    std = np.sqrt(var + 1e-5)
    x_hat = (x - mean) / std
    np.testing.assert_allclose(out.numpy(), x_hat * w, rtol=1e-4, atol=1e-5)
    dy = np.random.randn(4, 5).astype(np.float32)
    ndl.ops.summation(ndl.ops.multiply(out, tensor(dy, requires_grad=False))).backward()
    g = dy * w  # gradient w.r.t. x_hat
    dx = (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True)) / std
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ln.weight.grad.numpy(), (dy * x_hat).sum(axis=0), rtol=1e-4, atol=1e-5)


def test_dropout_mask_scaling_and_eval_identity():
    x = np.random.randn(200, 50).astype(np.float32)
    drop = nn.Dropout(p=0.3)
    np.random.seed(5)
    keep = np.random.rand(200, 50) < 0.7
    np.random.seed(5)
    out = drop(tensor(x)).numpy()
    np.testing.assert_allclose(out, np.where(keep, x / 0.7, 0.0), rtol=1e-6)
    assert 0.65 < keep.mean() < 0.75
    drop.eval()
    np.testing.assert_array_equal(drop(tensor(x)).numpy(), x)
    with pytest.raises(ValueError):
        nn.Dropout(p=1.0)


class Holder(nn.Module):
    """Modules held in a list, a tuple and a dict, to check that discovery looks inside containers."""

    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(2, 2), nn.Dropout(0.5)]
        self.pair = (nn.BatchNorm1d(2), nn.Sequential(nn.Dropout(0.1)))
        self.named = {"head": nn.Linear(2, 1, bias=False)}


def test_train_eval_and_parameters_reach_containers():
    model = nn.Sequential(Holder(), nn.ReLU())
    modules = model._children()
    # Holder; its Linear, Dropout, BatchNorm, Sequential (+ its Dropout), head Linear; then ReLU.
    assert len(modules) == 8
    model.eval()
    assert not model.training and all(not m.training for m in modules)
    model.train()
    assert model.training and all(m.training for m in modules)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.layers.0.weight", "0.layers.0.bias", "0.pair.0.weight", "0.pair.0.bias",
                     "0.named.head.weight"]
    assert [p.shape for p in model.parameters()] == [(2, 2), (1, 2), (2,), (2,), (2, 1)]
    assert all(isinstance(p, nn.Parameter) for p in model.parameters())


def test_shared_parameter_listed_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(model.parameters()) == 2


def run_and_grad(fn, arrays):
    """Value of sum(fn(*tensors) * fixed weights) and the gradient of each input."""
    inputs = [tensor(a) for a in arrays]
    out = fn(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    weights = np.linspace(-1, 1, out.numpy().size, dtype=np.float32).reshape(out.shape)
    ndl.ops.summation(ndl.ops.multiply(out, tensor(weights, requires_grad=False))).backward()
    return out.numpy(), [t.grad.numpy() for t in inputs]


@pytest.mark.parametrize("name", ["linear", "batchnorm_train", "layernorm", "softmax_loss", "dropout"])
def test_composite_building_blocks_match_the_fused_ones(name):
    from needle.nn import functional as F
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal(4), rng.standard_normal(4)
    labels = ndl.Tensor(np.array([0, 1, 2, 3, 1, 0], dtype=np.uint8), requires_grad=False)
    mask = (rng.random((6, 4)) < 0.5).astype(np.float32) * 2
    calls = {
        "linear": (lambda f: (lambda x, W, b: f(x, W, b)), [x, rng.standard_normal((4, 3)), w[:3].reshape(1, 3)]),
        "batchnorm_train": (lambda f: (lambda x, w, b: f(x, w, b, 1e-5)), [x, w, b]),
        "layernorm": (lambda f: (lambda x, w, b: f(x, w, b, 1e-5)), [x, w, b]),
        "softmax_loss": (lambda f: (lambda x: f(x, labels)), [x]),
        "dropout": (lambda f: (lambda x: f(x, mask)), [x]),
    }
    wrap, arrays = calls[name]
    fused_out, fused_grads = run_and_grad(wrap(getattr(F, name)), arrays)
    composite_out, composite_grads = run_and_grad(wrap(getattr(F, name + "_composite")), arrays)
    np.testing.assert_allclose(composite_out, fused_out, rtol=1e-5, atol=1e-5)
    for got, want in zip(composite_grads, fused_grads, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    if name == "batchnorm_train":
        _, mean, var = F.batchnorm_train(tensor(x), tensor(w), tensor(b), 1e-5)
        np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(var, x.var(axis=0), rtol=1e-5)
