"""Core neural-network modules following the CMU 10-414/714 needle API (hw2).

Parameters are collected by walking each module's attributes in definition order, descending into
nested modules and into lists, tuples and dicts, so `parameters()` has the course's order.
See `needle.nn.state` for how the walk names tensors in `state_dict()`.
"""
from functools import lru_cache
from typing import Any, Iterator

import numpy as np

from needle import capture, init, ops
from needle.autograd import Tensor
from needle.nn import functional as F
from needle.nn.state import load_module_state_dict, module_state_dict


class Parameter(Tensor):
    """A tensor that a Module exposes as trainable (collected by `Module.parameters()`)."""


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _flatten_members(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Yield (dotted name, Parameter | Module) found in value, looking inside lists, tuples and dicts."""
    if isinstance(value, (Parameter, Module)):
        yield prefix, value
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _flatten_members(_join(prefix, str(index)), item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten_members(_join(prefix, str(key)), item)


class Module:
    """Base class of all layers: parameter discovery, train/eval mode, state_dict, call -> forward."""

    # Attributes holding plain (non-trainable) tensors that belong in state_dict(), e.g. running stats.
    _buffer_names: tuple[str, ...] = ()
    # Attribute whose items are keyed by their bare index in state_dict() (Sequential.modules).
    _index_keyed_attr: str | None = None
    training = True  # also set per instance; the class default covers subclasses skipping __init__

    def __init__(self):
        self.training = True

    def _named_members(self) -> Iterator[tuple[str, Any]]:
        """Yield this module's own (local name, Parameter | Module | buffer Tensor) in attribute order."""
        for attr, value in self.__dict__.items():
            if attr in self._buffer_names:
                if isinstance(value, Tensor):
                    yield attr, value
                continue
            prefix = "" if attr == self._index_keyed_attr else attr
            yield from _flatten_members(prefix, value)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, Parameter) for every parameter, each shared parameter once."""
        seen: set[int] = set()
        for name, param in self._named_parameters_with_duplicates(prefix):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def _named_parameters_with_duplicates(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, value in self._named_members():
            full = _join(prefix, name)
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value._named_parameters_with_duplicates(full)

    def parameters(self) -> list[Parameter]:
        """All parameters of this module and its descendants, in definition order."""
        return [param for _, param in self.named_parameters()]

    def _children(self) -> list["Module"]:
        """All descendant modules (depth first), including those held in lists, tuples and dicts."""
        found = []
        for _, value in self._named_members():
            if isinstance(value, Module):
                found.append(value)
                found.extend(value._children())
        return found

    def eval(self) -> "Module":
        """Switch this module and every descendant to evaluation mode."""
        return self._set_training(False)

    def train(self) -> "Module":
        """Switch this module and every descendant to training mode."""
        return self._set_training(True)

    def _set_training(self, mode: bool) -> "Module":
        self.training = mode
        for module in self._children():
            module.training = mode
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Ordered mapping dotted name -> numpy copy of every parameter and buffer."""
        return module_state_dict(self)

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> "Module":
        """Give each parameter/buffer a float32 (own dtype) copy of state[key]; keys and shapes checked."""
        load_module_state_dict(self, state, strict=strict)
        return self

    def __call__(self, *args, **kwargs):
        # The outermost call of a capturable module tree may replay a recorded step (needle.capture).
        return capture.module_call(self, args, kwargs)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        capture.bump_epoch()  # a captured step must notice new structure or hyperparameters


class Identity(Module):
    """Returns its input unchanged."""

    _static_forward = True  # see needle.capture

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """y = x @ W + b with W (in, out) and b (1, out), both Kaiming-uniform as in the course."""

    _static_forward = True  # see needle.capture

    def __init__(self, in_features, out_features, bias=True, device=None, dtype="float32"):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        # Drawing order (weight, then bias) matters: np.random.seed reproduces the course's values.
        self.weight = Parameter(init.kaiming_uniform(
            in_features, out_features, device=device, dtype=dtype, requires_grad=True))
        self.bias = None
        if bias:
            bias_column = init.kaiming_uniform(out_features, 1, device=device, dtype=dtype)
            self.bias = Parameter(bias_column.numpy().reshape(1, out_features),
                                  device=device, dtype=dtype, requires_grad=True)

    def forward(self, X: Tensor) -> Tensor:
        return F.linear(X, self.weight, self.bias)  # (N, out_features)


class Flatten(Module):
    """Reshapes (N, d1, d2, ...) to (N, d1*d2*...)."""

    _static_forward = True  # see needle.capture

    def forward(self, X: Tensor) -> Tensor:
        batch = X.shape[0]
        return ops.reshape(X, (batch, int(np.prod(X.shape[1:], dtype=np.int64))))


class ReLU(Module):
    """Elementwise max(x, 0)."""

    _static_forward = True  # see needle.capture

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Sequential(Module):
    """Applies its modules in order; in state_dict() they are keyed by index ("0.weight")."""

    _static_forward = True  # see needle.capture

    _index_keyed_attr = "modules"

    def __init__(self, *modules):
        super().__init__()
        self.modules = modules

    def forward(self, x: Tensor) -> Tensor:
        modules, index = self.modules, 0
        while index < len(modules):
            x, index = _fused_forward(modules, index, x)
        return x


def _fused_forward(modules, index, x):
    """Apply modules[index] (fused with the ones after it where a fused op exists) -> (out, next index).

    Training-mode patterns: BatchNorm1d/BatchNorm2d [ReLU [Dropout]], BatchNorm2d ReLU MaxPool2d(2),
    ReLU Dropout, Residual ReLU.
    Exact types only (a class that defines train_block itself): a subclass may change forward. The result equals the unfused modules' up to float rounding.
    """
    module = modules[index]
    kind = type(module)
    following = [type(m) for m in modules[index + 1:index + 3]]
    if "train_block" in kind.__dict__ and module.training:  # BatchNorm1d, BatchNorm2d, not subclasses
        if following[:1] == [ReLU]:
            if following[1:] == [Dropout] and modules[index + 2].training and module.fuses_dropout:
                return module.train_block(x, relu=True, drop_p=modules[index + 2].p), index + 3
            if module.fuses_pool and _even_2x2_max_pool(modules[index + 2:index + 3], x):
                return module.train_block(x, relu=True, pool2=True), index + 3
            return module.train_block(x, relu=True), index + 2
    elif kind is ReLU and following[:1] == [Dropout] and modules[index + 1].training:
        return F.random_dropout(x, modules[index + 1].p, relu=True), index + 2
    elif kind is Residual and following[:1] == [ReLU]:
        return F.add_relu(module.fn(x), x), index + 2
    return module(x), index + 1


def _even_2x2_max_pool(following, x) -> bool:
    """Whether `following` is one MaxPool2d (exact type) of 2x2 windows, stride 2, that tiles
    x (N, C, H, W) exactly."""
    pool = following[0] if following else None
    return (type(pool).__dict__.get("pools_max", False) and pool.kernel_size == 2 and pool.stride == 2
            and len(x.shape) == 4 and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0)


class SoftmaxLoss(Module):
    """Mean cross-entropy of logits (N, k) against integer labels y (N,)."""

    def forward(self, logits: Tensor, y: Tensor) -> Tensor:
        return F.softmax_loss(logits, y)


class BatchNorm1d(Module):
    """Batch normalisation over the batch axis of (N, dim) inputs.

    Training normalises with the batch mean and biased batch variance and updates
    running = (1 - momentum) * running + momentum * batch in numpy (no graph). As in the course,
    running_var tracks the *biased* batch variance (PyTorch tracks the unbiased one).
    Evaluation normalises with the running statistics, so each sample is independent of the batch.
    """

    _static_forward = True  # see needle.capture

    _buffer_names = ("running_mean", "running_var")
    fuses_dropout = True  # train_block can also apply a following Dropout (same mask draws)
    fuses_pool = False  # BatchNorm2d's train_block can also apply a following 2x2 max-pool

    def __init__(self, dim, eps=1e-5, momentum=0.1, device=None, dtype="float32"):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.momentum = momentum
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype, requires_grad=True))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype, requires_grad=True))
        self.running_mean = init.zeros(dim, device=device, dtype=dtype, requires_grad=False)
        self.running_var = init.ones(dim, device=device, dtype=dtype, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.batchnorm_eval(x, self.weight, self.bias, self.running_mean, self.running_var, self.eps)
        return self.train_block(x)  # (N, dim)

    def train_block(self, x: Tensor, relu: bool = False, drop_p: float | None = None) -> Tensor:
        """Training-mode forward, optionally fused with the ReLU and dropout(drop_p) after it."""
        return F.batchnorm_block(x, self.weight, self.bias, self.eps, relu=relu, drop_p=drop_p,
                                 on_stats=self._update_stats)

    def _update_stats(self, batch_mean: np.ndarray, batch_var: np.ndarray) -> None:
        """running <- (1 - momentum) * running + momentum * batch for both statistics, in numpy (no
        graph); called by the op, so a replayed step updates them too. Fresh arrays: a state_dict
        or an array someone holds keeps its values."""
        mean, var = self.running_mean, self.running_var
        keep, take = _momentum_scalars(self.momentum, mean.cached_data.dtype)
        new_mean, new_var = mean.cached_data * keep, var.cached_data * keep  # fresh, the buffers' dtype
        new_mean += batch_mean * take
        new_var += batch_var * take
        mean.cached_data, var.cached_data = new_mean, new_var


@lru_cache(maxsize=16)
def _momentum_scalars(momentum: float, dtype) -> tuple:
    """(1 - momentum, momentum) as numpy scalars of the running statistics' dtype."""
    return dtype.type(1 - momentum), dtype.type(momentum)


class LayerNorm1d(Module):
    """Normalises each row of (N, dim) to zero mean and unit (biased) variance, then scales and shifts."""

    _static_forward = True  # see needle.capture

    def __init__(self, dim, eps=1e-5, device=None, dtype="float32"):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype, requires_grad=True))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype, requires_grad=True))

    def forward(self, x: Tensor) -> Tensor:
        return F.layernorm(x, self.weight, self.bias, self.eps)  # (N, dim)


class Dropout(Module):
    """Inverted dropout: zero each entry with probability p, scale survivors by 1/(1-p); identity in eval."""

    _static_forward = True  # see needle.capture

    def __init__(self, p=0.5):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        # Drawn even when p == 0 so the random stream matches the course's.
        return F.random_dropout(x, self.p)


class Residual(Module):
    """fn(x) + x."""

    _static_forward = True  # see needle.capture

    def __init__(self, fn: Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return ops.add(self.fn(x), x)
