"""Operator implementations: element-wise, scalar, shape and matmul ops (course needle API).

Every op keeps the input dtype: scalars are stored as Python numbers so that numpy's
promotion rules (NEP 50) never upcast a float32 array to float64, and scalar ops cast a floating
result back to the input's dtype anyway (as the course's backend does). Integer inputs follow
numpy (int * 0.5 is float64). Tensor-Tensor ops follow numpy's promotion, as in the course.
"""
from functools import lru_cache

import numpy as np

from ..autograd import Tensor, TensorOp, is_grad_enabled

__all__ = [
    "EWiseAdd", "add", "AddScalar", "add_scalar", "EWiseMul", "multiply", "MulScalar", "mul_scalar",
    "PowerScalar", "power_scalar", "EWisePow", "power", "EWiseDiv", "divide", "DivScalar", "divide_scalar",
    "Transpose", "transpose", "Reshape", "reshape", "BroadcastTo", "broadcast_to", "Summation", "summation",
    "MatMul", "matmul", "Negate", "negate", "Log", "log", "Exp", "exp", "ReLU", "relu",
    "Tanh", "tanh", "Sigmoid", "sigmoid",
]


def _python_scalar(value):
    """numpy scalars / 0-d arrays -> Python numbers (a np.float64 scalar would upcast float32 arrays)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.item()
    return value


def keep_float_dtype(result, a):
    """result in the dtype of the float array a (a no-op unless something promoted it)."""
    if result.dtype != a.dtype and a.dtype.kind == "f":
        return result.astype(a.dtype)
    return result


def _normalize_axes(axes, ndim):
    """None -> None; int or tuple -> sorted tuple of non-negative axes."""
    if axes is None:
        return None
    if isinstance(axes, (int, np.integer)):
        axes = (axes,)
    return tuple(sorted(int(a) % ndim if ndim else int(a) for a in axes))


def _keepdims_shape(shape, axes):
    """Input shape with the reduced axes set to 1 (axes=None reduces all)."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def unbroadcast(grad, shape):
    """Sum grad (a Tensor) back down to `shape`, undoing numpy-style broadcasting."""
    shape = tuple(shape)
    grad_shape = grad.shape
    if grad_shape == shape:
        return grad
    n_new = len(grad_shape) - len(shape)
    axes = tuple(range(n_new)) + tuple(
        n_new + i for i, d in enumerate(shape) if d == 1 and grad_shape[n_new + i] != 1)
    if axes:
        grad = summation(grad, axes)
    return reshape(grad, shape)


class EWiseAdd(TensorOp):
    """a + b (shapes broadcast like numpy; gradients are summed back)."""

    replayable = True

    def compute(self, a, b):
        return a + b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return unbroadcast(out_grad, a.shape), unbroadcast(out_grad, b.shape)

    def gradient_arrays(self, g, inputs, out, needs):
        """Array form for needle.capture (same values as gradient)."""
        return tuple(_unbroadcast_array(g, x.shape) if need else None for x, need in zip(inputs, needs))


def _unbroadcast_array(g, shape):
    """Sum the array g back down to `shape` (numpy broadcasting undone), as unbroadcast does."""
    if g.shape == shape:
        return g
    n_new = g.ndim - len(shape)
    axes = tuple(range(n_new)) + tuple(n_new + i for i, d in enumerate(shape) if d == 1 and g.shape[n_new + i] != 1)
    if axes:
        g = np.sum(g, axis=axes)
    return np.reshape(g, shape)


def add(a, b):
    return EWiseAdd()(a, b)


class AddScalar(TensorOp):
    """a + scalar."""

    replayable = True

    def __init__(self, scalar):
        self.scalar = _python_scalar(scalar)

    def compute(self, a):
        return keep_float_dtype(a + self.scalar, a)

    def gradient(self, out_grad, node):
        return out_grad


def add_scalar(a, scalar):
    return AddScalar(scalar)(a)


class EWiseMul(TensorOp):
    """a * b element-wise."""

    replayable = True

    def compute(self, a, b):
        return a * b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return unbroadcast(out_grad * b, a.shape), unbroadcast(out_grad * a, b.shape)


def multiply(a, b):
    return EWiseMul()(a, b)


class MulScalar(TensorOp):
    """a * scalar."""

    replayable = True

    def __init__(self, scalar):
        self.scalar = _python_scalar(scalar)

    def compute(self, a):
        return keep_float_dtype(a * self.scalar, a)

    def gradient(self, out_grad, node):
        return mul_scalar(out_grad, self.scalar)


def mul_scalar(a, scalar):
    return MulScalar(scalar)(a)


class PowerScalar(TensorOp):
    """a ** scalar (the scalar is a constant; course: integer power, any real works here)."""

    replayable = True

    def __init__(self, scalar):
        self.scalar = _python_scalar(scalar)

    def compute(self, a):
        return keep_float_dtype(a ** self.scalar, a)

    def gradient(self, out_grad, node):
        a = node.inputs[0]
        if self.scalar == 2:  # common case (squares in variances/losses): skip a power op
            return mul_scalar(out_grad * a, 2)
        return out_grad * mul_scalar(power_scalar(a, self.scalar - 1), self.scalar)


def power_scalar(a, scalar):
    return PowerScalar(scalar)(a)


class EWisePow(TensorOp):
    """a ** b element-wise."""

    replayable = True

    def compute(self, a, b):
        return a ** b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        grad_a = out_grad * b * a ** (b - 1)
        grad_b = out_grad * node * log(a)
        return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)


def power(a, b):
    return EWisePow()(a, b)


class EWiseDiv(TensorOp):
    """a / b element-wise."""

    replayable = True

    def compute(self, a, b):
        return a / b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        grad_a = out_grad / b
        grad_b = -(grad_a * a / b)  # -out_grad * a / b**2
        return unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)


def divide(a, b):
    return EWiseDiv()(a, b)


class DivScalar(TensorOp):
    """a / scalar."""

    replayable = True

    def __init__(self, scalar):
        self.scalar = _python_scalar(scalar)

    def compute(self, a):
        return keep_float_dtype(a / self.scalar, a)

    def gradient(self, out_grad, node):
        return divide_scalar(out_grad, self.scalar)


def divide_scalar(a, scalar):
    return DivScalar(scalar)(a)


class Transpose(TensorOp):
    """Swap two axes: the last two when axes is None, else axes=(i, j)."""

    replayable = True

    def __init__(self, axes=None):
        self.axes = tuple(axes) if axes is not None else None

    def compute(self, a):
        if self.axes is None:
            return np.swapaxes(a, -1, -2)
        return np.swapaxes(a, self.axes[0], self.axes[1])

    def gradient(self, out_grad, node):
        return transpose(out_grad, self.axes)  # a swap is its own inverse

    def gradient_arrays(self, g, inputs, out, needs):
        """Array form for needle.capture (a view, as the forward)."""
        return (self.compute(g),)


def transpose(a, axes=None):
    return Transpose(axes)(a)


class Reshape(TensorOp):
    """Reshape to `shape` (a view when numpy can)."""

    replayable = True

    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a):
        return np.reshape(a, self.shape)

    def gradient(self, out_grad, node):
        return reshape(out_grad, node.inputs[0].shape)

    def gradient_arrays(self, g, inputs, out, needs):
        """Array form for needle.capture."""
        return (np.reshape(g, inputs[0].shape),)


def reshape(a, shape):
    return Reshape(shape)(a)


class BroadcastTo(TensorOp):
    """Broadcast to `shape` (numpy rules: new leading axes and size-1 axes)."""

    replayable = True

    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a):
        return np.broadcast_to(a, self.shape)  # read-only view: no op writes into its inputs

    def gradient(self, out_grad, node):
        return unbroadcast(out_grad, node.inputs[0].shape)


def broadcast_to(a, shape):
    return BroadcastTo(shape)(a)


class Summation(TensorOp):
    """Sum over axes (None: all; an int; or a tuple); the summed axes are dropped."""

    replayable = True

    def __init__(self, axes=None):
        self.axes = axes

    def compute(self, a):
        self.axes = _normalize_axes(self.axes, a.ndim)
        return np.sum(a, axis=self.axes)

    def gradient(self, out_grad, node):
        input_shape = node.inputs[0].shape
        kept = reshape(out_grad, _keepdims_shape(input_shape, self.axes))
        return broadcast_to(kept, input_shape)


def summation(a, axes=None):
    return Summation(axes)(a)


class MatMul(TensorOp):
    """a @ b, batched over leading axes with numpy broadcasting of batch dims (inputs are >= 2-D)."""

    replayable = True

    def compute(self, a, b):
        return a @ b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        # skip the (costly) product for an input that needs no gradient, e.g. a data batch
        grad_a = unbroadcast(matmul(out_grad, transpose(b)), a.shape) if a.requires_grad else None
        grad_b = unbroadcast(matmul(transpose(a), out_grad), b.shape) if b.requires_grad else None
        return grad_a, grad_b


def matmul(a, b):
    return MatMul()(a, b)


class Negate(TensorOp):
    """-a."""

    replayable = True

    def compute(self, a):
        return np.negative(a)

    def gradient(self, out_grad, node):
        return negate(out_grad)


def negate(a):
    return Negate()(a)


class Log(TensorOp):
    """Natural log."""

    replayable = True

    def compute(self, a):
        return np.log(a)

    def gradient(self, out_grad, node):
        return out_grad / node.inputs[0]


def log(a):
    return Log()(a)


class Exp(TensorOp):
    """e ** a."""

    replayable = True

    def compute(self, a):
        return np.exp(a)

    def gradient(self, out_grad, node):
        return out_grad * node


def exp(a):
    return Exp()(a)


_SMALL = 1 << 16  # elements


@lru_cache(maxsize=32)
def _ones(n, dtype):
    """A read-only vector of n ones (cached: one per batch size and dtype)."""
    ones = np.ones(n, dtype=dtype)
    ones.flags.writeable = False
    return ones


@lru_cache(maxsize=32)
def _zeros(shape, dtype):
    """A read-only array of zeros (cached per shape and dtype)."""
    zeros = np.zeros(shape, dtype=dtype)
    zeros.flags.writeable = False
    return zeros


class ReLU(TensorOp):
    """max(a, 0)."""

    replayable = True

    def compute(self, a):
        # numpy's maximum against a same-shape array takes its vectorised loop; against the scalar 0
        # it is ~3x slower (numpy 2.4, float32). NaN still propagates. Cached zeros only for
        # batch-sized arrays, so the cache stays small (<= 32 x 256 KiB).
        if a.size <= _SMALL:
            return np.maximum(a, _zeros(a.shape, a.dtype))
        return np.maximum(a, 0)

    def gradient(self, out_grad, node):
        mask = node.realize_cached_data() > 0  # (...) bool; a constant, so d2/da2 = 0 as it should
        if not is_grad_enabled():  # plain backward: one numpy product, no graph node
            return Tensor.make_const(out_grad.realize_cached_data() * mask)
        return out_grad * Tensor.make_const(mask)

    def gradient_reads(self):
        return ("out",)

    def gradient_arrays(self, g, inputs, out, needs):
        """Array form for needle.capture (same values as gradient)."""
        return (g * (out > 0),)


def relu(a):
    return ReLU()(a)


class Tanh(TensorOp):
    """tanh(a) (course hw4 op)."""

    replayable = True

    def compute(self, a):
        return np.tanh(a)

    def gradient(self, out_grad, node):
        return out_grad * (1 - node * node)


def tanh(a):
    return Tanh()(a)


class Sigmoid(TensorOp):
    """1 / (1 + exp(-a)), computed without overflow."""

    replayable = True

    def compute(self, a):
        # tanh form is overflow-free for large |a| and keeps the dtype
        return (np.tanh(a * 0.5) + 1) * 0.5

    def gradient(self, out_grad, node):
        return out_grad * (node * (1 - node))


def sigmoid(a):
    return Sigmoid()(a)
