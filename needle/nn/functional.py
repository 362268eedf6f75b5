"""Differentiable building blocks used by needle.nn modules.

Modules only call the public names at the bottom of this file, each bound to the fused op from
`needle.ops.ops_fused` (one graph node, numpy gradient, first-order only). The `*_composite`
versions build the same function from course ops; rebind a name to switch back (e.g. for
gradients of gradients, which fused ops do not support).
"""
import numpy as np

from needle import init, ops
from needle.autograd import Tensor


def _row_broadcast(vector: Tensor, shape: tuple) -> Tensor:
    """Broadcast a (dim,) or (1, dim) tensor to (N, dim)."""
    return ops.broadcast_to(ops.reshape(vector, (1, shape[-1])), shape)


def linear_composite(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight (+ bias broadcast over rows)."""
    out = ops.matmul(x, weight)  # (N, out)
    if bias is None:
        return out
    return ops.add(out, _row_broadcast(bias, out.shape))


def softmax_loss_composite(logits: Tensor, y: Tensor) -> Tensor:
    """Mean over the batch of logsumexp(logits) - logits[true class]."""
    batch, classes = logits.shape
    y_one_hot = init.one_hot(classes, y, device=logits.device, dtype=logits.dtype)  # (N, k)
    log_norm = ops.logsumexp(logits, axes=(1,))  # (N,)
    true_logit = ops.summation(ops.multiply(logits, y_one_hot), axes=(1,))  # (N,)
    return ops.divide_scalar(ops.summation(ops.add(log_norm, ops.negate(true_logit))), batch)


def _normalise(x: Tensor, axis: int, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) along axis, with the biased variance; also returns mean, var."""
    count = x.shape[axis]
    keep = (1, x.shape[1]) if axis == 0 else (x.shape[0], 1)
    mean = ops.divide_scalar(ops.summation(x, axes=(axis,)), count)  # (dim,) or (N,)
    centred = ops.add(x, ops.negate(ops.broadcast_to(ops.reshape(mean, keep), x.shape)))
    var = ops.divide_scalar(ops.summation(ops.power_scalar(centred, 2), axes=(axis,)), count)
    std = ops.power_scalar(ops.add_scalar(var, eps), 0.5)
    return ops.divide(centred, ops.broadcast_to(ops.reshape(std, keep), x.shape)), mean, var


def _scale_shift(normed: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return ops.add(ops.multiply(normed, _row_broadcast(weight, normed.shape)),
                   _row_broadcast(bias, normed.shape))


def batchnorm_train_composite(x: Tensor, weight: Tensor, bias: Tensor, eps: float):
    """Batch-normalise (N, dim) with batch statistics -> (out, batch mean, biased batch var as numpy)."""
    normed, mean, var = _normalise(x, axis=0, eps=eps)
    return _scale_shift(normed, weight, bias), mean.numpy().copy(), var.numpy().copy()


def batchnorm_eval(x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor,
                   running_var: Tensor, eps: float) -> Tensor:
    """Normalise (N, dim) with fixed statistics, so each row is independent of the others.

    Folded into one affine map: x * scale + shift, scale = weight / sqrt(var + eps),
    shift = bias - running_mean * scale (gradients reach weight and bias, not the statistics).
    """
    inv_std = Tensor(1.0 / np.sqrt(running_var.numpy() + eps), dtype=x.dtype, requires_grad=False)  # (dim,)
    scale = ops.multiply(weight, inv_std)  # (dim,)
    shift = ops.add(bias, ops.negate(ops.multiply(scale, running_mean)))  # (dim,)
    return ops.add(ops.multiply(x, _row_broadcast(scale, x.shape)), _row_broadcast(shift, x.shape))


def layernorm_composite(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """Normalise each row of (N, dim) over its features, then scale and shift per feature."""
    normed, _, _ = _normalise(x, axis=1, eps=eps)
    return _scale_shift(normed, weight, bias)


def dropout_mask(shape: tuple, p: float, dtype) -> np.ndarray:
    """Inverted-dropout multiplier: keep with probability 1-p (course: randb(p=1-p)), scaled by 1/(1-p)."""
    keep = init.randb(*shape, p=1 - p).numpy()  # bool
    return np.multiply(keep, np.asarray(1.0 / (1 - p), dtype=dtype), dtype=dtype)  # one pass, no cast copy


def dropout_composite(x: Tensor, mask_scale: np.ndarray) -> Tensor:
    """x * mask_scale with course ops."""
    return ops.multiply(x, Tensor(mask_scale, dtype=x.dtype, requires_grad=False))


def random_dropout_composite(x: Tensor, p: float, relu: bool = False) -> Tensor:
    """(relu then) dropout with a freshly drawn mask, with course ops."""
    if relu:
        x = ops.relu(x)
    return dropout_composite(x, dropout_mask(x.shape, p, x.dtype))


def batchnorm_block_composite(x: Tensor, weight: Tensor, bias: Tensor, eps: float, relu: bool = False,
                              drop_p: float | None = None, on_stats=None) -> Tensor:
    """Training BatchNorm (reporting its batch statistics to on_stats), then optionally ReLU and dropout."""
    out, mean, var = batchnorm_train_composite(x, weight, bias, eps)
    if on_stats is not None:
        on_stats(mean, var)
    if drop_p is not None:
        return random_dropout_composite(out, drop_p, relu)
    return ops.relu(out) if relu else out


def add_relu_composite(a: Tensor, b: Tensor) -> Tensor:
    """relu(a + b) with course ops."""
    return ops.relu(ops.add(a, b))


# The switch points (fused ops, see module docstring).
linear = ops.linear  # (x, weight, bias=None)
softmax_loss = ops.softmax_loss  # (logits, y)
batchnorm_train = ops.batchnorm_train_stats  # (x, weight, bias, eps) -> (out, mean, biased var)
layernorm = ops.layernorm  # (x, weight, bias, eps)
dropout = ops.dropout  # (x, mask_scale)
random_dropout = ops.random_dropout  # (x, p, relu=False): draws its mask
batchnorm_block = ops.batchnorm_train  # (x, weight, bias, eps, relu, drop_p, on_stats) -> out
add_relu = ops.add_relu  # (a, b) -> relu(a + b)
