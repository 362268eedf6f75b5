"""needle.init: constructors, exact reproducibility against single numpy draws, initializer statistics."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import init


class TestReproducibleDraws:
    """Each random constructor must equal ONE numpy global-generator call for the whole shape."""

    def test_rand(self):
        np.random.seed(3)
        out = init.rand(4, 5, low=-2.0, high=3.0)
        np.random.seed(3)
        expected = (-2.0 + 5.0 * np.random.rand(4, 5)).astype(np.float32)
        np.testing.assert_array_equal(out.numpy(), expected)

    def test_randn(self):
        np.random.seed(4)
        out = init.randn(3, 7, mean=1.0, std=0.5)
        np.random.seed(4)
        expected = (0.5 * np.random.randn(3, 7) + 1.0).astype(np.float32)
        np.testing.assert_array_equal(out.numpy(), expected)

    def test_randb(self):
        np.random.seed(5)
        out = init.randb(6, 6, p=0.3)
        np.random.seed(5)
        np.testing.assert_array_equal(out.numpy(), np.random.rand(6, 6) <= 0.3)
        assert out.dtype == np.bool_

    @pytest.mark.parametrize("name", ["xavier_uniform", "kaiming_uniform"])
    def test_uniform_initializers(self, name):
        np.random.seed(6)
        out = getattr(init, name)(8, 3)
        np.random.seed(6)
        bound = math.sqrt(6 / 11) if name == "xavier_uniform" else math.sqrt(2) * math.sqrt(3 / 8)
        expected = (-bound + 2 * bound * np.random.rand(8, 3)).astype(np.float32)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-7)

    @pytest.mark.parametrize("name", ["xavier_normal", "kaiming_normal"])
    def test_normal_initializers(self, name):
        np.random.seed(7)
        out = getattr(init, name)(8, 3)
        np.random.seed(7)
        std = math.sqrt(2 / 11) if name == "xavier_normal" else math.sqrt(2) / math.sqrt(8)
        np.testing.assert_allclose(out.numpy(), (std * np.random.randn(8, 3)).astype(np.float32), rtol=1e-6)


@pytest.mark.parametrize("name, expected_std", [
    ("xavier_uniform", 2.0 * math.sqrt(6 / 700) / math.sqrt(3)),  # U(-a, a) has std a/sqrt(3)
    ("xavier_normal", 2.0 * math.sqrt(2 / 700)),
])
def test_xavier_statistics_with_gain(name, expected_std):
    np.random.seed(0)
    values = getattr(init, name)(300, 400, gain=2.0).numpy()
    assert values.shape == (300, 400) and values.dtype == np.float32
    assert abs(values.mean()) < 0.05 * expected_std
    assert abs(values.std() / expected_std - 1) < 0.01
    if name == "xavier_uniform":
        assert np.abs(values).max() <= 2.0 * math.sqrt(6 / 700)


@pytest.mark.parametrize("name, expected_std", [
    ("kaiming_uniform", math.sqrt(2) * math.sqrt(3 / 250) / math.sqrt(3)),
    ("kaiming_normal", math.sqrt(2) / math.sqrt(250)),
])
def test_kaiming_statistics(name, expected_std):
    np.random.seed(1)
    values = getattr(init, name)(250, 400).numpy()
    assert values.shape == (250, 400) and values.dtype == np.float32
    assert abs(values.std() / expected_std - 1) < 0.01
    if name == "kaiming_uniform":
        assert np.abs(values).max() <= math.sqrt(2) * math.sqrt(3 / 250)


def test_kaiming_rejects_other_nonlinearities():
    with pytest.raises(ValueError):
        init.kaiming_uniform(3, 4, nonlinearity="tanh")


def test_initializer_kwargs_pass_through():
    weight = init.kaiming_uniform(3, 4, dtype="float32", requires_grad=True, device=ndl.cpu())
    assert weight.requires_grad and weight.shape == (3, 4)


def test_randb_probability():
    np.random.seed(2)
    assert abs(init.randb(100_000, p=0.2).numpy().mean() - 0.2) < 0.005


class TestDeterministicConstructors:
    def test_constant_ones_zeros(self):
        np.testing.assert_array_equal(init.constant(2, 3, c=4.5).numpy(), np.full((2, 3), 4.5))
        assert init.ones(2).dtype == np.float32 and init.ones(2).numpy().sum() == 2
        assert init.zeros(3, 1).shape == (3, 1) and not init.zeros(1).requires_grad
        assert init.ones(2, requires_grad=True).requires_grad

    def test_one_hot(self):
        out = init.one_hot(4, ndl.Tensor([2, 0, 3]))
        np.testing.assert_array_equal(out.numpy(), np.eye(4, dtype=np.float32)[[2, 0, 3]])
        assert out.dtype == np.float32
        assert init.one_hot(3, np.array([1]), dtype="float64").dtype == np.float64

    def test_like_constructors(self):
        like = ndl.Tensor(np.ones((2, 5)), dtype="float64")
        assert init.zeros_like(like).shape == (2, 5) and init.zeros_like(like).dtype == np.float64
        assert init.ones_like(like).numpy().sum() == 10
        assert not init.zeros_like(like).requires_grad

    def test_random_defaults(self):
        assert init.rand(2, 2).dtype == np.float32 and not init.rand(2, 2).requires_grad
        assert init.randn(3).shape == (3,)
