"""Basic tensor constructors; random draws use numpy's global generator in ONE call per tensor."""
import numpy as np

from ..autograd import Tensor
from ..backend_numpy import cpu

__all__ = ["rand", "randn", "constant", "ones", "zeros", "randb", "one_hot", "zeros_like", "ones_like"]


def _wrap(array, dtype, requires_grad):
    """Make a leaf Tensor from a freshly created array, casting only when needed."""
    if dtype is not None and array.dtype != np.dtype(dtype):
        array = array.astype(dtype)
    return Tensor.make_const(array, requires_grad=requires_grad)


def rand(*shape, low=0.0, high=1.0, device=None, dtype="float32", requires_grad=False):
    """Uniform [low, high) samples: low + (high - low) * np.random.rand(*shape)."""
    device = cpu() if device is None else device
    array = low + (high - low) * device.rand(*shape)
    return _wrap(array, dtype, requires_grad)


def randn(*shape, mean=0.0, std=1.0, device=None, dtype="float32", requires_grad=False):
    """Normal samples: std * np.random.randn(*shape) + mean."""
    device = cpu() if device is None else device
    array = std * device.randn(*shape) + mean
    return _wrap(array, dtype, requires_grad)


def constant(*shape, c=1.0, device=None, dtype="float32", requires_grad=False):
    """Tensor filled with c."""
    device = cpu() if device is None else device
    return _wrap(device.full(shape, c, dtype=dtype), dtype, requires_grad)


def ones(*shape, device=None, dtype="float32", requires_grad=False):
    """Tensor of ones."""
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape, device=None, dtype="float32", requires_grad=False):
    """Tensor of zeros."""
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def randb(*shape, p=0.5, device=None, dtype="bool", requires_grad=False):
    """Binary tensor, True with probability p: np.random.rand(*shape) <= p."""
    device = cpu() if device is None else device
    array = device.rand(*shape) <= p
    return _wrap(array, dtype, requires_grad)


def one_hot(n, i, device=None, dtype="float32", requires_grad=False):
    """One-hot rows: shape i.shape + (n,) for integer indices i (Tensor, array, list or int)."""
    device = cpu() if device is None else device
    indices = i.numpy() if isinstance(i, Tensor) else np.asarray(i)
    return _wrap(device.one_hot(n, indices.astype(np.intp, copy=False), dtype=dtype), dtype, requires_grad)


def zeros_like(array, *, device=None, requires_grad=False):
    """Zeros with the shape and dtype of array."""
    return zeros(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)


def ones_like(array, *, device=None, requires_grad=False):
    """Ones with the shape and dtype of array."""
    return ones(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)
