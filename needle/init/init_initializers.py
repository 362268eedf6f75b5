"""Xavier (Glorot) and Kaiming (He) initializers with the course formulas; (fan_in, fan_out) tensors."""
import math

from .init_basic import rand, randn

__all__ = ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]


def _relu_gain(nonlinearity):
    """Only ReLU is supported (course): gain sqrt(2)."""
    if nonlinearity != "relu":
        raise ValueError(f"unsupported nonlinearity {nonlinearity!r}; only 'relu'")
    return math.sqrt(2)


def xavier_uniform(fan_in, fan_out, gain=1.0, **kwargs):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    bound = gain * math.sqrt(6 / (fan_in + fan_out))
    return rand(fan_in, fan_out, low=-bound, high=bound, **kwargs)


def xavier_normal(fan_in, fan_out, gain=1.0, **kwargs):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    std = gain * math.sqrt(2 / (fan_in + fan_out))
    return randn(fan_in, fan_out, mean=0.0, std=std, **kwargs)


def kaiming_uniform(fan_in, fan_out, nonlinearity="relu", shape=None, **kwargs):
    """U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2); `shape` overrides (fan_in, fan_out)."""
    bound = _relu_gain(nonlinearity) * math.sqrt(3 / fan_in)
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    return rand(*shape, low=-bound, high=bound, **kwargs)


def kaiming_normal(fan_in, fan_out, nonlinearity="relu", shape=None, **kwargs):
    """N(0, std^2) with std = gain / sqrt(fan_in), gain = sqrt(2); `shape` overrides (fan_in, fan_out)."""
    std = _relu_gain(nonlinearity) / math.sqrt(fan_in)
    shape = (fan_in, fan_out) if shape is None else tuple(shape)
    return randn(*shape, mean=0.0, std=std, **kwargs)
