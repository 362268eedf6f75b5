"""state_dict / load_state_dict for needle modules.

Naming scheme (matches a PyTorch module of the same structure):
  * a tensor's key is the dotted path of attribute names from the root module, e.g. `fn.weight`;
  * items of a list/tuple/dict attribute add their index/key: `blocks.0.weight`, `heads.cls.bias`;
  * EXCEPT a Sequential's children, keyed by their bare index: `0.weight`, `2.0.fn.1.running_mean`;
  * entries are Parameters and buffers (BatchNorm1d running_mean / running_var).
Values are numpy copies in needle's layout: Linear weight (in, out), bias (1, out); norm weight/bias (dim,).
(PyTorch stores Linear.weight as (out, in) and adds BatchNorm `num_batches_tracked`: convert when exchanging.)
"""
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

from needle.autograd import Tensor


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def named_tensors(module, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
    """Yield (dotted key, tensor) for every parameter and buffer of module and its descendants."""
    for name, value in module._named_members():  # Parameters, buffers and child Modules
        key = _join(prefix, name)
        if isinstance(value, Tensor):
            yield key, value
        else:
            yield from named_tensors(value, key)


def module_state_dict(module) -> "OrderedDict[str, np.ndarray]":
    """Ordered mapping key -> independent numpy copy of each parameter and buffer."""
    return OrderedDict((key, np.array(tensor.numpy(), copy=True)) for key, tensor in named_tensors(module))


def _check_state(targets: dict[str, Tensor], state: dict[str, Any], strict: bool) -> None:
    """Raise KeyError for missing/unexpected keys (strict) and ValueError for shape mismatches."""
    missing = [key for key in targets if key not in state]
    unexpected = [key for key in state if key not in targets]
    if strict and (missing or unexpected):
        raise KeyError(f"state_dict keys do not match the module: missing={missing}, unexpected={unexpected}")
    mismatched = [f"{key}: expected {tuple(targets[key].shape)}, got {tuple(np.shape(state[key]))}"
                  for key in targets if key in state and tuple(np.shape(state[key])) != tuple(targets[key].shape)]
    if mismatched:
        raise ValueError("state_dict shape mismatch: " + "; ".join(mismatched))


def load_module_state_dict(module, state: dict[str, Any], strict: bool = True) -> None:
    """Replace each tensor's data by a copy of state[key] cast to the tensor's own dtype (no graph).

    Everything is checked before anything is written, so a failed load leaves the module unchanged.
    With strict=False, missing and unexpected keys are ignored (shapes are still checked).
    """
    targets = dict(named_tensors(module))
    _check_state(targets, state, strict)
    for key, tensor in targets.items():
        if key in state:
            dtype = tensor.realize_cached_data().dtype
            tensor.cached_data = np.array(state[key], dtype=dtype, copy=True)
