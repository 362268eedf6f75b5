"""The floor: a hand-fused numpy MLPResNet training step, the least work needle's step can do.

Straight-line numpy for MLPResNet(784, 100, 3 blocks, BatchNorm1d, dropout, 10 classes) with
Adam(weight decay): no graph, no Tensors, no modules; gradients written straight into one flat
buffer, the same kernels (and so the same float32 results, bit for bit) as needle's fused ops,
the same random draws (np.random: the epoch's permutation, then each block's dropout mask) and
the same batches. `bench/needle_mlp_resnet.py` times it next to needle and checks that both give
the same losses; `tests/needle/test_bench_floor.py` checks that on a small model.
"""
import numpy as np

EPS = 1e-5  # BatchNorm eps
MOMENTUM = 0.1  # BatchNorm running-average momentum


class FloorMLPResNet:
    """Parameters (one flat float32 buffer, needle's parameter order), Adam state and the step."""

    def __init__(self, state, num_blocks, drop_prob, lr, weight_decay, beta1=0.9, beta2=0.999, eps=1e-8):
        names = _parameter_names(num_blocks)
        sizes = [state[n].size for n in names]
        bounds = np.cumsum([0] + sizes)
        self.weights = np.concatenate([np.asarray(state[n], np.float32).reshape(-1) for n in names])
        self.grads = np.zeros_like(self.weights)
        self.m_sum, self.v_sum = np.zeros_like(self.weights), np.zeros_like(self.weights)
        self.work, self.scratch = np.empty_like(self.weights), np.empty_like(self.weights)
        views = lambda flat: [flat[lo:hi].reshape(state[n].shape) for n, lo, hi in zip(names, bounds, bounds[1:])]
        self.w, self.g = views(self.weights), views(self.grads)
        self.running = [[np.asarray(state[f"{b + 2}.0.fn.{i}.running_{s}"], np.float32).copy()
                         for i in (1, 5) for s in ("mean", "var")] for b in range(num_blocks)]
        self.blocks, self.p = num_blocks, drop_prob
        self.lr, self.wd, self.b1, self.b2, self.eps, self.t = lr, weight_decay, beta1, beta2, eps, 0

    def epoch(self, x, y, batch):
        """One shuffled epoch (np.random.permutation, as needle's DataLoader) -> list of losses."""
        n = len(x)
        order = np.random.permutation(n)
        losses = []
        for idx in np.array_split(order, range(batch, n, batch)):
            losses.append(self.step(np.take(x, idx, axis=0), np.take(y, idx, axis=0).astype(np.intp)))
        return losses

    def step(self, xb, labels):
        """Forward, backward into the flat gradient buffer, Adam; returns the loss (float)."""
        w, g, n = self.w, self.g, len(xb)
        ones, avg, zeros = _ones(n), _avg(n), _zeros((n, w[0].shape[1]))
        h0 = xb @ w[0]
        h0 += w[1]
        a = np.maximum(h0, zeros, out=h0)  # (N, 100)
        saved = []
        for b in range(self.blocks):
            k = 2 + 8 * b  # this block's parameters: W1 b1 g1 be1 W2 b2 g2 be2
            z1 = a @ w[k]
            z1 += w[k + 1]
            d1, bn1 = _bn_forward(z1, w[k + 2], w[k + 3], avg, self.running[b][0:2], relu=True, p=self.p)
            z2 = d1 @ w[k + 4]
            z2 += w[k + 5]
            y2, bn2 = _bn_forward(z2, w[k + 6], w[k + 7], avg, self.running[b][2:4])
            out = y2 + a
            np.maximum(out, zeros, out=out)
            saved.append((a, d1, bn1, bn2, out))
            a = out
        logits = a @ w[-2]
        logits += w[-1]
        loss, dlogits = _softmax_loss(logits, labels)
        # backward: parameter gradients straight into the flat buffer
        np.matmul(a.T, dlogits, out=g[-2])
        np.matmul(ones, dlogits, out=g[-1].reshape(-1))
        da = dlogits @ w[-2].T
        for b in reversed(range(self.blocks)):
            k = 2 + 8 * b
            r, d1, bn1, bn2, out = saved[b]
            ds = np.multiply(da, out > 0, dtype=da.dtype)  # residual add + ReLU
            dz2 = _bn_backward(ds, bn2, w[k + 6], ones, g[k + 6], g[k + 7])
            np.matmul(d1.T, dz2, out=g[k + 4])
            np.matmul(ones, dz2, out=g[k + 5].reshape(-1))
            dd1 = dz2 @ w[k + 4].T
            dz1 = _bn_backward(dd1, bn1, w[k + 2], ones, g[k + 2], g[k + 3], out=d1)
            np.matmul(r.T, dz1, out=g[k])
            np.matmul(ones, dz1, out=g[k + 1].reshape(-1))
            da = (dz1 @ w[k].T) + ds  # the two partials of the block input
        dh0 = da * (h0 > 0)
        np.matmul(xb.T, dh0, out=g[0])
        np.matmul(ones, dh0, out=g[1].reshape(-1))
        self._adam()
        return float(loss)

    def _adam(self):
        """needle's Adam on the flat buffers (weighted sums, folded scalars, weight decay)."""
        self.t += 1
        f, b1, b2 = np.float32, self.b1, self.b2
        root = float(np.sqrt((1 - b2 ** self.t) / (1 - b2)))
        step, eps = self.lr * (1 - b1) * root / (1 - b1 ** self.t), self.eps * root
        w, work, s = self.weights, self.work, self.scratch
        np.multiply(w, f(self.wd), out=work)
        work += self.grads
        self.m_sum *= f(b1)
        self.m_sum += work
        np.multiply(work, work, out=s)
        self.v_sum *= f(b2)
        self.v_sum += s
        np.sqrt(self.v_sum, out=s)
        s += f(eps)
        np.divide(self.m_sum, s, out=s)
        s *= f(step)
        w -= s


def _bn_forward(x, weight, bias, avg, running, relu=False, p=None):
    """Training BatchNorm (+ ReLU + dropout) as needle's BatchNormTrain; updates running in place."""
    mean = avg @ x  # (D,)
    centred = x - mean
    var = avg @ (centred * centred)
    inv_std = 1.0 / np.sqrt(var + EPS)
    scale = weight * inv_std
    out = centred * scale
    out += bias
    mask = None
    if relu:
        np.maximum(out, _zeros(out.shape), out=out)
    if p is not None:
        keep = np.random.rand(*out.shape) <= 1 - p
        mask = np.multiply(keep, np.asarray(1.0 / (1 - p), dtype=np.float32), dtype=np.float32)
        out *= mask
    for stat, batch_stat in zip(running, (mean, var)):
        stat *= np.float32(1 - MOMENTUM)
        stat += batch_stat * np.float32(MOMENTUM)
    return out, (centred, inv_std, scale, mask, relu)


def _bn_backward(g, saved, weight, ones, grad_weight_out, grad_bias_out, out=None):
    """BatchNorm (+ ReLU + dropout) backward: dx, with dweight and dbias written into the buffer."""
    centred, inv_std, scale, mask, relu = saved
    if mask is not None:
        g = g * mask
    if relu:
        g = np.multiply(g, out > 0, dtype=g.dtype)
    grad_bias = ones @ g
    grad_weight = (ones @ (g * centred)) * inv_std
    grad_bias_out[...] = grad_bias
    grad_weight_out[...] = grad_weight
    k_over_n = scale * (1.0 / g.shape[0])
    dx = g * scale
    dx -= centred * (k_over_n * inv_std * grad_weight)
    dx -= k_over_n * grad_bias
    return dx


def _softmax_loss(logits, labels):
    """Mean cross-entropy and its gradient, as needle's SoftmaxLoss."""
    n = logits.shape[0]
    rows = np.arange(n)
    shifted = logits - np.maximum.reduce(logits, axis=1, keepdims=True)
    probs = np.exp(shifted)
    sums = np.add.reduce(probs, axis=1, keepdims=True)
    total = np.add.reduce(np.log(sums), axis=None) - np.add.reduce(shifted[rows, labels])
    probs /= sums
    probs[rows, labels] -= 1
    probs *= np.float32(1.0) / n
    return np.asarray(total / n, dtype=logits.dtype), probs


def _parameter_names(num_blocks):
    names = ["0.weight", "0.bias"]
    for b in range(num_blocks):
        names += [f"{b + 2}.0.fn.{i}.{s}" for i in (0, 1, 4, 5) for s in ("weight", "bias")]
    return names + [f"{num_blocks + 2}.weight", f"{num_blocks + 2}.bias"]


_CACHE = {}


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _ones(n):
    return _cached(("ones", n), lambda: np.ones(n, np.float32))


def _avg(n):
    return _cached(("avg", n), lambda: np.full(n, 1.0 / n, np.float32))


def _zeros(shape):
    return _cached(("zeros", shape), lambda: np.zeros(shape, np.float32))
