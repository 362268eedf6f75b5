"""Activation and loss ops: forward against numpy, float64 gradients against central differences,
dtype kept, and values and gradients against PyTorch (skipped without torch)."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn

from .gradcheck import check_gradients

RNG = np.random.default_rng(7)


def _away_from_zero(*shape):
    """|x| >= 0.1: the kinks of leaky_relu, l1 and huber stay out of finite-difference reach."""
    return RNG.uniform(0.1, 2.0, shape) * RNG.choice([-1.0, 1.0], shape)


def _np_gelu(a):
    return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a ** 3)))


TARGET = RNG.standard_normal((4, 3))
LABELS = np.array([0, 2, 1, 2])
ACTIVATIONS = {  # name -> (needle fn, numpy reference)
    "leaky_relu": (lambda a: ndl.leaky_relu(a, 0.2), lambda a: np.where(a > 0, a, 0.2 * a)),
    "gelu": (ndl.gelu, _np_gelu),
    "silu": (ndl.silu, lambda a: a / (1 + np.exp(-a))),
    "tanh": (ndl.tanh, np.tanh),
    "sigmoid": (ndl.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
}
LOSSES = {  # name -> (needle fn of the prediction, numpy reference)
    "mse": (lambda p: ndl.mse_loss(p, TARGET), lambda p: np.mean((p - TARGET) ** 2)),
    "l1": (lambda p: ndl.l1_loss(p, TARGET), lambda p: np.mean(np.abs(p - TARGET))),
    "huber": (lambda p: ndl.huber_loss(p, TARGET, 0.7),
              lambda p: np.mean(np.where(np.abs(p - TARGET) < 0.7, 0.5 * (p - TARGET) ** 2,
                                         0.7 * (np.abs(p - TARGET) - 0.35)))),
    "smoothed_ce": (lambda z: ndl.smoothed_softmax_loss(z, LABELS, 0.1), None),
}


def _input_for(name):
    if name in ("mse", "l1", "huber"):
        # keep prediction - target away from 0 and from the huber threshold
        return TARGET + _away_from_zero(4, 3) * 0.25
    return _away_from_zero(4, 3)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_forward_and_gradient(name):
    fn, reference = ACTIVATIONS[name]
    x = _away_from_zero(4, 5)
    np.testing.assert_allclose(fn(ndl.Tensor(x, dtype="float64")).numpy(), reference(x), rtol=1e-12)
    check_gradients(fn, x)


@pytest.mark.parametrize("name", ["mse", "l1", "huber", "smoothed_ce"])
def test_loss_gradient_matches_finite_differences(name):
    fn, reference = LOSSES[name]
    p = _input_for(name)
    if name == "huber":  # keep |d| away from delta = 0.7 (the kink of its second derivative)
        d = p - TARGET
        p = np.where(np.abs(np.abs(d) - 0.7) < 0.05, p + 0.2, p)
    if reference is not None:
        np.testing.assert_allclose(fn(ndl.Tensor(p, dtype="float64")).numpy(), reference(p), rtol=1e-12)
    check_gradients(fn, p)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS) + sorted(LOSSES))
def test_float32_in_float32_out_forward_and_backward(name):
    fn = (ACTIVATIONS.get(name) or LOSSES[name])[0]
    x = ndl.Tensor(_input_for(name).astype(np.float32), dtype="float32")
    out = fn(x)
    assert out.dtype == "float32"
    out.sum().backward()
    assert x.grad.dtype == "float32"


def test_smoothing_zero_equals_the_plain_softmax_loss():
    z = RNG.standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 0, 1])
    plain = nn.SoftmaxLoss()(ndl.Tensor(z, dtype="float64"), y).numpy()
    np.testing.assert_allclose(ndl.smoothed_softmax_loss(ndl.Tensor(z, dtype="float64"), y, 0.0).numpy(),
                               plain, rtol=1e-12)


def test_huber_is_quadratic_below_delta_and_linear_above():
    pred = ndl.Tensor(np.array([0.5, 3.0]), dtype="float64")
    value = ndl.huber_loss(pred, np.zeros(2), 1.0).numpy()
    assert value == pytest.approx((0.5 * 0.25 + (3.0 - 0.5)) / 2)


def test_modules_match_ops():
    x = ndl.Tensor(_away_from_zero(3, 4), dtype="float64")
    np.testing.assert_array_equal(nn.GELU()(x).numpy(), ndl.gelu(x).numpy())
    np.testing.assert_array_equal(nn.LeakyReLU(0.3)(x).numpy(), ndl.leaky_relu(x, 0.3).numpy())
    np.testing.assert_array_equal(nn.HuberLoss(0.5)(x, np.zeros((3, 4))).numpy(),
                                  ndl.huber_loss(x, np.zeros((3, 4)), 0.5).numpy())


def test_activations_and_losses_match_pytorch():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    x = _away_from_zero(5, 3)
    torch_activations = {"leaky_relu": lambda t: functional.leaky_relu(t, 0.2),
                         "gelu": lambda t: functional.gelu(t, approximate="tanh"),
                         "silu": functional.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    for name, (fn, _) in ACTIVATIONS.items():
        ours = ndl.Tensor(x, dtype="float64")
        fn(ours).sum().backward()
        theirs = torch.tensor(x, requires_grad=True)
        out = torch_activations[name](theirs)
        out.sum().backward()
        np.testing.assert_allclose(fn(ndl.Tensor(x, dtype="float64")).numpy(), out.detach().numpy(),
                                   rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
    p = RNG.standard_normal((4, 3))
    torch_losses = {"mse": lambda t: functional.mse_loss(t, torch.tensor(TARGET)),
                    "l1": lambda t: functional.l1_loss(t, torch.tensor(TARGET)),
                    "huber": lambda t: functional.huber_loss(t, torch.tensor(TARGET), delta=0.7),
                    "smoothed_ce": lambda t: functional.cross_entropy(t, torch.tensor(LABELS),
                                                                      label_smoothing=0.1)}
    for name, (fn, _) in LOSSES.items():
        ours = ndl.Tensor(p, dtype="float64")
        value = fn(ours)
        value.backward()
        theirs = torch.tensor(p, requires_grad=True)
        reference = torch_losses[name](theirs)
        reference.backward()
        np.testing.assert_allclose(value.numpy(), reference.item(), rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)
