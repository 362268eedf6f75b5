"""Gradient clipping by the global L2 norm over all parameters (PyTorch's clip_grad_norm_)."""
import math

import numpy as np

from needle.autograd import Tensor

CLIP_EPS = 1e-6  # as PyTorch: the scale is max_norm / (norm + 1e-6)


def clip_grad_norm(parameters, max_norm: float) -> float:
    """Scale every gradient by max_norm / (total norm + 1e-6) when that is below 1; returns the
    total norm before clipping (computed in float64, so it does not overflow float32)."""
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    grads = [p.grad.realize_cached_data() for p in params]
    total = math.sqrt(sum(float(np.dot(g.reshape(-1).astype(np.float64), g.reshape(-1).astype(np.float64)))
                          for g in grads))
    coef = max_norm / (total + CLIP_EPS)
    if coef < 1:  # fresh arrays: a gradient array may be shared with another tensor
        for p, g in zip(params, grads):
            p.grad = Tensor.make_const(g * g.dtype.type(coef))
    return total
