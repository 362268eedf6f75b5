"""Optimizers (course API): updates run in place on the parameters' numpy buffers.

A step never builds graph, never touches `.grad` and keeps each parameter's dtype.
Speed: on the first step the parameters' arrays are packed into one contiguous buffer (each
parameter's `cached_data` becomes a view of it) and the optimizer's buffers likewise, so a step is
a dozen numpy calls over one array instead of a dozen per parameter. If a parameter's array is
replaced later (e.g. `Module.load_state_dict`), the next step packs again. Steps where some
gradients are None update the others one by one, through the same views.

`state_dict()` returns {"step": int, "state": {param index: {buffer name: numpy array}}}, so a
training job can checkpoint and resume bit-identically with `load_state_dict()`.
"""
import math
import weakref
from operator import is_not
from typing import Any, Optional

import numpy as np

from . import autograd


# parameter -> a view of its optimizer's flat gradient buffer (the latest packing wins); the
# version changes with every packing, so a reader can cache what it looked up
GRAD_BUFFERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
GRAD_BUFFERS_VERSION = [0]


class _FlatLayout:
    """Parameters' data and the optimizer's buffers as views into contiguous 1-d arrays."""

    def __init__(self, params, buffer_names, state):
        arrays = [p.realize_cached_data() for p in params]
        self.dtype = arrays[0].dtype
        bounds = np.cumsum([0] + [a.size for a in arrays])
        self.slices = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        total = int(bounds[-1])
        self.weights = np.empty(total, dtype=self.dtype)
        self.grads = np.empty(total, dtype=self.dtype)  # viewed by grad_views (written by a backward)
        self.gathered = np.empty(total, dtype=self.dtype)  # gradients copied together by gather_grads
        self.work = np.empty(total, dtype=self.dtype)
        self.views = []
        for p, array, part in zip(params, arrays, self.slices):
            self.weights[part] = array.reshape(-1)
            view = self.weights[part].reshape(array.shape)
            p.cached_data = view
            self.views.append(view)
        # Per-parameter views of the gradient buffer: a backward that writes the gradients there
        # (needle.capture) spares the copy. Registered so the backward can find them.
        self.grad_views = [self.grads[part].reshape(a.shape) for part, a in zip(self.slices, arrays)]
        for p, view in zip(params, self.grad_views):
            GRAD_BUFFERS[p] = view
        GRAD_BUFFERS_VERSION[0] += 1
        self.buffers = {name: np.zeros(total, dtype=self.dtype) for name in buffer_names}
        for index, bufs in state.items():  # carry over existing state (e.g. just loaded)
            for name, array in bufs.items():
                self.buffers[name][self.slices[index]] = array.reshape(-1)

    @staticmethod
    def supports(params) -> bool:
        """Packing needs at least one parameter, no parameter listed twice, and a single dtype."""
        return (bool(params) and len({id(p) for p in params}) == len(params)
                and len({p.realize_cached_data().dtype for p in params}) == 1)

    def is_current(self, params) -> bool:
        """False once any parameter's array has been replaced since packing."""
        return not any(map(is_not, [p.cached_data for p in params], self.views))

    def state_views(self) -> dict[int, dict[str, np.ndarray]]:
        """Per-parameter views of the buffers, shaped like each parameter."""
        return {index: {name: flat[part].reshape(view.shape) for name, flat in self.buffers.items()}
                for index, (part, view) in enumerate(zip(self.slices, self.views))}

    def gather_grads(self, grads) -> np.ndarray:
        """All gradients as one array: `grads` itself when they already are its views, else a copy."""
        if any(map(is_not, grads, self.grad_views)):  # into a private buffer: the views may be held
            return np.concatenate([g.reshape(-1) for g in grads], out=self.gathered, casting="same_kind")
        return self.grads


class Optimizer:
    """Base optimizer over a list of Parameters; subclasses implement `_update` on numpy arrays."""

    _buffer_names: tuple[str, ...] = ()
    weight_decay = 0.0

    def __init__(self, params):
        self.params = list(params)
        self.t = 0  # number of step() calls
        self.state: dict[int, dict[str, np.ndarray]] = {}
        self._flat: Optional[_FlatLayout] = None

    def step(self):
        """Apply one update to every parameter that has a gradient."""
        self.t += 1
        self._begin_step()
        arrays = self._grad_arrays()
        flat = None if arrays is None else self._packed()
        if flat is not None:
            g = flat.gather_grads(arrays)
            self._update(flat.weights, g, flat.buffers, flat.work)
            return
        for index, p in enumerate(self.params):
            if p.grad is not None:
                weight = p.realize_cached_data()
                g = np.asarray(p.grad.realize_cached_data(), dtype=weight.dtype)  # read only
                self._update(weight, g, self._buffers(index, weight), np.empty_like(weight))

    def _grad_arrays(self) -> Optional[list]:
        """Every parameter's gradient array, or None when some parameter has no gradient."""
        try:  # one pass: a missing gradient (None) raises
            if autograd.LAZY_MODE:
                return [p.grad.realize_cached_data() for p in self.params]
            return [p.grad.cached_data for p in self.params]  # backward's gradients are computed
        except AttributeError:
            return None

    def _begin_step(self):
        """Per-step scalars (e.g. bias corrections); called once before the updates."""

    def _update(self, weight: np.ndarray, g: np.ndarray, bufs: dict[str, np.ndarray], work: np.ndarray):
        """Update weight in place from gradient g (read only: it may be a parameter's .grad), state
        bufs and scratch work."""
        raise NotImplementedError()

    def reset_grad(self):
        """Drop all gradients (the next backward starts from scratch)."""
        for p in self.params:
            p.grad = None

    def _packed(self) -> Optional[_FlatLayout]:
        """The flat layout, (re)built when missing or stale; None when parameters cannot be packed."""
        if self._flat is None or not self._flat.is_current(self.params):
            if not _FlatLayout.supports(self.params):
                return None
            self._flat = _FlatLayout(self.params, self._buffer_names, self.state)
            self.state = self._flat.state_views()
        return self._flat

    def _buffers(self, index: int, like: np.ndarray) -> dict[str, np.ndarray]:
        """This parameter's state buffers, created as zeros of its shape and dtype on first use."""
        if index not in self.state:
            self.state[index] = {name: np.zeros_like(like) for name in self._buffer_names}
        return self.state[index]

    def _with_weight_decay(self, weight: np.ndarray, g: np.ndarray, work: np.ndarray) -> np.ndarray:
        """g + weight_decay * weight (L2 regularisation added to the gradient), in work; or g itself."""
        if not self.weight_decay:
            return g
        np.multiply(weight, weight.dtype.type(self.weight_decay), out=work)
        work += g
        return work

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
        self._flat = None  # repack from the restored state on the next step


class SGD(Optimizer):
    """SGD with dampened momentum: u <- m*u + (1-m)*(g + wd*w); w <- w - lr*u."""

    _buffer_names = ("u",)

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay

    def _update(self, weight, g, bufs, work):
        f = weight.dtype.type
        u = bufs["u"]
        g = self._with_weight_decay(weight, g, work)
        u *= f(self.momentum)
        np.multiply(g, f(1 - self.momentum), out=work)
        u += work
        np.multiply(u, f(self.lr), out=work)
        weight -= work


class Adam(Optimizer):
    """Adam with bias correction and L2 weight decay added to the gradient (not AdamW).

    Fewer full-size passes than the textbook form (10, or 12 with weight decay): the state holds
    the exponentially weighted sums m_sum = m / (1 - beta1) and v_sum = v / (1 - beta2) (PyTorch's
    exp_avg and exp_avg_sq divided by 1 - beta), which update without a multiply by 1 - beta, and
    every constant factor (bias corrections, 1 - beta, lr, eps) is folded into two per-step scalars.
    Equal to the textbook update up to float rounding.
    """

    _buffer_names = ("m_sum", "v_sum")

    def __init__(self, params, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= beta < 1:
                raise ValueError(f"Adam {name} must be in [0, 1), got {beta}")
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weight_decay = weight_decay
        self._step_size = self._eps_scaled = 1.0
        self._state_betas = (beta1, beta2)  # the betas the sums were accumulated with

    def _begin_step(self):
        b1, b2 = self.beta1, self.beta2
        if (b1, b2) != self._state_betas:  # betas changed: rescale the sums to the new 1 - beta
            self._rescale_sums(*self._state_betas)
        # w -= lr (m / c1) / (sqrt(v / c2) + eps) with c1 = 1 - b1^t, c2 = 1 - b2^t, m = (1 - b1) m_sum,
        # v = (1 - b2) v_sum  equals  w -= step * m_sum / (sqrt(v_sum) + eps * root) with
        # root = sqrt(c2 / (1 - b2)) and step = lr (1 - b1) root / c1.
        root = math.sqrt((1 - b2 ** self.t) / (1 - b2))  # correctly rounded, as np.sqrt
        self._step_size = self.lr * (1 - b1) * root / (1 - b1 ** self.t)
        self._eps_scaled = self.eps * root

    def _rescale_sums(self, old_b1, old_b2):
        for bufs in self.state.values():
            bufs["m_sum"] *= bufs["m_sum"].dtype.type((1 - old_b1) / (1 - self.beta1))
            bufs["v_sum"] *= bufs["v_sum"].dtype.type((1 - old_b2) / (1 - self.beta2))
        self._state_betas = (self.beta1, self.beta2)

    def _update(self, weight, g, bufs, work):
        f = weight.dtype.type
        m, v = bufs["m_sum"], bufs["v_sum"]
        g = self._with_weight_decay(weight, g, work)
        scratch = self._second_scratch(work)
        m *= f(self.beta1)
        m += g  # m_sum <- b1 m_sum + g
        np.multiply(g, g, out=scratch)
        v *= f(self.beta2)
        v += scratch  # v_sum <- b2 v_sum + g^2
        np.sqrt(v, out=scratch)
        scratch += f(self._eps_scaled)
        np.divide(m, scratch, out=scratch)
        scratch *= f(self._step_size)
        weight -= scratch

    def _second_scratch(self, work):
        """A second scratch array like work (kept between steps for the packed buffer)."""
        cached = getattr(self, "_scratch", None)
        if cached is None or cached.shape != work.shape or cached.dtype != work.dtype:
            cached = np.empty_like(work)
            if self._flat is not None and work is self._flat.work:
                self._scratch = cached
        return cached


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter; PyTorch's AdamW):
    w <- w (1 - lr wd), then the Adam update on the plain gradient."""

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=0.0)
        self.decoupled_weight_decay = weight_decay

    def _update(self, weight, g, bufs, work):
        if self.decoupled_weight_decay:
            weight *= weight.dtype.type(1 - self.lr * self.decoupled_weight_decay)
        super()._update(weight, g, bufs, work)
