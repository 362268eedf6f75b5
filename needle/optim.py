"""Optimizers (course API): updates run in place on the parameters' numpy buffers.

A step never builds graph, never touches `.grad` and keeps each parameter's dtype. Per-parameter
state is created lazily (zeros) on the first step that sees a gradient for that parameter.
`state_dict()` returns {"step": int, "state": {param index: {buffer name: numpy array}}}, so a
training job can checkpoint and resume bit-identically with `load_state_dict()`.
"""
from typing import Any

import numpy as np


class Optimizer:
    """Base optimizer over a list of Parameters."""

    _buffer_names: tuple[str, ...] = ()
    weight_decay = 0.0

    def __init__(self, params):
        self.params = list(params)
        self.t = 0  # number of step() calls
        self.state: dict[int, dict[str, np.ndarray]] = {}
        self._work: dict[int, list[np.ndarray]] = {}

    def step(self):
        """Apply one update to every parameter that has a gradient."""
        raise NotImplementedError()

    def reset_grad(self):
        """Drop all gradients (the next backward starts from scratch)."""
        for p in self.params:
            p.grad = None

    def _buffers(self, index: int, like: np.ndarray) -> dict[str, np.ndarray]:
        """This parameter's state buffers, created as zeros of its shape and dtype on first use."""
        if index not in self.state:
            self.state[index] = {name: np.zeros_like(like) for name in self._buffer_names}
        return self.state[index]

    def _params_with_grad(self):
        """Yield (index, weight buffer, gradient buffer) for parameters whose grad is set."""
        for index, p in enumerate(self.params):
            if p.grad is not None:
                yield index, p.realize_cached_data(), p.grad.realize_cached_data()

    def _scratch(self, index: int, like: np.ndarray, count: int) -> list[np.ndarray]:
        """Reusable work arrays for one parameter (not part of the exported state)."""
        buffers = self._work.get(index)
        if buffers is None or buffers[0].shape != like.shape or buffers[0].dtype != like.dtype:
            buffers = self._work[index] = [np.empty_like(like) for _ in range(count)]
        return buffers

    def _regularised_grad(self, weight: np.ndarray, grad: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out <- grad + weight_decay * weight (grad itself is never modified)."""
        if self.weight_decay:
            np.multiply(weight, weight.dtype.type(self.weight_decay), out=out)
            np.add(out, grad, out=out, casting="same_kind")
        else:
            np.copyto(out, grad, casting="same_kind")
        return out

    def state_dict(self) -> dict[str, Any]:
        """Copy of the optimizer state: step counter and per-parameter buffers keyed by parameter index."""
        return {"step": self.t,
                "state": {i: {name: buf.copy() for name, buf in bufs.items()} for i, bufs in self.state.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore state produced by state_dict() for the same parameter list (checked)."""
        restored = {}
        for raw_index, bufs in state["state"].items():
            index = int(raw_index)
            if not 0 <= index < len(self.params):
                raise ValueError(f"optimizer state has parameter index {index}, optimizer has {len(self.params)}")
            weight = self.params[index].realize_cached_data()
            if set(bufs) != set(self._buffer_names):
                raise KeyError(f"parameter {index}: expected buffers {self._buffer_names}, got {sorted(bufs)}")
            for name, buf in bufs.items():
                if np.shape(buf) != weight.shape:
                    raise ValueError(f"parameter {index} buffer {name}: shape {np.shape(buf)} != {weight.shape}")
            restored[index] = {name: np.array(buf, dtype=weight.dtype, copy=True) for name, buf in bufs.items()}
        self.t = int(state["step"])
        self.state = restored


class SGD(Optimizer):
    """SGD with dampened momentum: u <- m*u + (1-m)*(g + wd*w); w <- w - lr*u."""

    _buffer_names = ("u",)

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def step(self):
        self.t += 1
        for index, weight, grad in self._params_with_grad():
            f = weight.dtype.type
            u = self._buffers(index, weight)["u"]
            (g,) = self._scratch(index, weight, 1)
            self._regularised_grad(weight, grad, out=g)
            u *= f(self.momentum)
            g *= f(1 - self.momentum)
            u += g
            np.multiply(u, f(self.lr), out=g)
            weight -= g


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay added to the gradient (not AdamW)."""

    _buffer_names = ("m", "v")

    def __init__(self, params, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay

    def step(self):
        self.t += 1
        # Bias corrections folded into scalars as PyTorch does: w -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps)
        step_size = self.lr / (1 - self.beta1 ** self.t)
        inv_sqrt_c2 = 1 / np.sqrt(1 - self.beta2 ** self.t)
        for index, weight, grad in self._params_with_grad():
            f = weight.dtype.type
            bufs = self._buffers(index, weight)
            m, v = bufs["m"], bufs["v"]
            g, work = self._scratch(index, weight, 2)
            self._regularised_grad(weight, grad, out=g)
            m *= f(self.beta1)
            np.multiply(g, f(1 - self.beta1), out=work)
            m += work  # m <- b1 m + (1 - b1) g
            np.multiply(g, g, out=work)
            work *= f(1 - self.beta2)
            v *= f(self.beta2)
            v += work  # v <- b2 v + (1 - b2) g^2
            np.sqrt(v, out=work)
            work *= f(inv_sqrt_c2)
            work += f(self.eps)
            np.divide(m, work, out=work)
            work *= f(step_size)
            weight -= work
