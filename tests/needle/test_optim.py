"""needle.optim: SGD and Adam against hand-computed numpy trajectories; state export and restore."""
import numpy as np
import pytest

import needle as ndl
from needle import nn, optim

STEPS = 4


def make_params(seed=0):
    rng = np.random.default_rng(seed)
    return [nn.Parameter(rng.standard_normal((3, 2)).astype(np.float32)),
            nn.Parameter(rng.standard_normal((2,)).astype(np.float32))]


def gradient_sequence(params, steps=STEPS, seed=1):
    """A fixed list (per step) of gradient arrays, one per parameter."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(steps)]


def run(opt, params, grads):
    """Feed each step's gradients to opt; returns the parameter values after every step."""
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = ndl.Tensor(g, requires_grad=False)
        opt.step()
        history.append([p.numpy().copy() for p in params])
    return history


def sgd_reference(weights, grads, lr, momentum, weight_decay):
    w = [x.astype(np.float64) for x in weights]
    u = [np.zeros_like(x) for x in w]
    history = []
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            u[i] = momentum * u[i] + (1 - momentum) * (g + weight_decay * w[i])
            w[i] = w[i] - lr * u[i]
        history.append([x.copy() for x in w])
    return history


def adam_reference(weights, grads, lr, beta1, beta2, eps, weight_decay):
    w = [x.astype(np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        for i, g in enumerate(step_grads):
            g = g + weight_decay * w[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            m_hat, v_hat = m[i] / (1 - beta1 ** t), v[i] / (1 - beta2 ** t)
            w[i] = w[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
        history.append([x.copy() for x in w])
    return history


def assert_histories_close(actual, expected, rtol=1e-5, atol=1e-6):
    for got_step, want_step in zip(actual, expected, strict=True):
        for got, want in zip(got_step, want_step, strict=True):
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.5, 0.1)])
def test_sgd_matches_hand_computed_trajectory(momentum, weight_decay):
    params = make_params()
    start = [p.numpy().copy() for p in params]
    grads = gradient_sequence(params)
    history = run(optim.SGD(params, lr=0.1, momentum=momentum, weight_decay=weight_decay), params, grads)
    assert_histories_close(history, sgd_reference(start, grads, 0.1, momentum, weight_decay))


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_adam_matches_hand_computed_trajectory(weight_decay):
    params = make_params()
    start = [p.numpy().copy() for p in params]
    grads = gradient_sequence(params)
    opt = optim.Adam(params, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=weight_decay)
    history = run(opt, params, grads)
    assert_histories_close(history, adam_reference(start, grads, 0.01, 0.8, 0.99, 1e-8, weight_decay))


@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                      lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1)])
def test_step_skips_missing_grads_and_leaves_grad_untouched(make_opt):
    params = make_params()
    frozen = params[1].numpy().copy()
    grad = np.ones((3, 2), dtype=np.float32)
    params[0].grad = ndl.Tensor(grad, requires_grad=False)
    opt = make_opt(params)
    opt.step()
    np.testing.assert_array_equal(params[1].numpy(), frozen)
    np.testing.assert_array_equal(params[0].grad.numpy(), grad)
    assert all(p.dtype == np.float32 and p.is_leaf() for p in params)
    opt.reset_grad()
    assert all(p.grad is None for p in params)


@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                                      lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.01)])
def test_state_dict_resume_is_bit_identical(make_opt):
    grads = gradient_sequence(make_params(), steps=6)
    params = make_params()
    opt = make_opt(params)
    run(opt, params, grads[:3])
    weights, saved = [p.numpy().copy() for p in params], opt.state_dict()
    uninterrupted = run(opt, params, grads[3:])[-1]

    resumed_params = make_params(seed=9)
    for p, w in zip(resumed_params, weights):
        p.cached_data = w.copy()
    resumed_opt = make_opt(resumed_params)
    resumed_opt.load_state_dict(saved)
    resumed = run(resumed_opt, resumed_params, grads[3:])[-1]
    for a, b in zip(uninterrupted, resumed):
        assert np.array_equal(a, b)


def test_state_dict_is_a_copy_and_load_checks_it():
    params = make_params()
    opt = optim.Adam(params)
    run(opt, params, gradient_sequence(params, steps=1))
    saved = opt.state_dict()
    assert saved["step"] == 1 and sorted(saved["state"]) == [0, 1]
    saved["state"][0]["m_sum"][...] = 123.0
    assert not np.any(opt.state[0]["m_sum"] == 123.0)
    with pytest.raises(ValueError):
        optim.Adam(params[:1]).load_state_dict(saved)
    bad_shape = {"step": 1, "state": {0: {"m_sum": np.zeros(5), "v_sum": np.zeros(5)}}}
    with pytest.raises(ValueError):
        optim.Adam(params).load_state_dict(bad_shape)
    with pytest.raises(KeyError):
        optim.SGD(params).load_state_dict(saved)


def test_steps_with_missing_grads_interleave_with_full_steps():
    params = make_params()
    start = [p.numpy().copy() for p in params]
    grads = gradient_sequence(params, steps=5)
    opt = optim.SGD(params, lr=0.1, momentum=0.5, weight_decay=0.1)
    w, u = [x.astype(np.float64) for x in start], [np.zeros(x.shape) for x in start]
    for step, step_grads in enumerate(grads):
        present = [True, step % 2 == 0]  # the second parameter gets a gradient every other step
        for p, g, has in zip(params, step_grads, present):
            p.grad = ndl.Tensor(g, requires_grad=False) if has else None
        opt.step()
        for i, (g, has) in enumerate(zip(step_grads, present)):
            if has:
                u[i] = 0.5 * u[i] + 0.5 * (g + 0.1 * w[i])
                w[i] = w[i] - 0.1 * u[i]
        for p, want in zip(params, w):
            np.testing.assert_allclose(p.numpy(), want, rtol=1e-5, atol=1e-6)


def test_step_updates_arrays_replaced_after_previous_steps():
    params = make_params()
    grads = gradient_sequence(params, steps=2)
    opt = optim.SGD(params, lr=0.1)
    run(opt, params, grads[:1])
    for p in params:  # what Module.load_state_dict does: new arrays, not writes into the old ones
        p.cached_data = np.ones(p.shape, dtype=np.float32)
    run(opt, params, grads[1:])
    for p, g in zip(params, grads[1]):
        np.testing.assert_allclose(p.numpy(), 1 - 0.1 * g, rtol=1e-6)
    assert not np.shares_memory(params[0].numpy(), params[1].numpy())


def test_parameters_listed_twice_are_updated_once_per_listing():
    param = make_params()[0]
    start = param.numpy().copy()
    opt = optim.SGD([param, param], lr=0.1)
    param.grad = ndl.Tensor(np.ones(param.shape, dtype=np.float32), requires_grad=False)
    opt.step()
    np.testing.assert_allclose(param.numpy(), start - 0.2, rtol=1e-6)


def torch_trajectory(torch, make_torch_opt, weights, grads):
    tensors = [torch.tensor(w, requires_grad=True) for w in weights]
    opt = make_torch_opt(tensors)
    history = []
    for step_grads in grads:
        for t, g in zip(tensors, step_grads):
            t.grad = torch.tensor(g)
        opt.step()
        history.append([t.detach().numpy().copy() for t in tensors])
    return history


def test_adam_and_sgd_match_torch():
    torch = pytest.importorskip("torch")
    grads = gradient_sequence(make_params())
    cases = [
        (lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.05),
         lambda ts: torch.optim.Adam(ts, lr=0.01, weight_decay=0.05)),
        # Momentum conventions differ (needle dampens by 1 - momentum from step 1); plain SGD coincides.
        (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=0.05),
         lambda ts: torch.optim.SGD(ts, lr=0.1, weight_decay=0.05)),
    ]
    for make_needle, make_torch in cases:
        params = make_params()
        start = [p.numpy().copy() for p in params]
        ours = run(make_needle(params), params, grads)
        theirs = torch_trajectory(torch, make_torch, start, grads)
        assert_histories_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make_opt", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                      lambda ps: optim.Adam(ps, lr=0.1, weight_decay=0.1)])
def test_packed_step_reads_gradients_without_changing_them(make_opt):
    params = make_params()
    grads = gradient_sequence(params, steps=1)[0]
    for p, g in zip(params, grads):
        p.grad = ndl.Tensor(g.copy(), requires_grad=False)
    make_opt(params).step()
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)


def test_gradients_in_the_flat_buffer_are_used_without_a_copy():
    """A backward that wrote each gradient into its registered view gives the same step."""
    results = []
    for use_views in (False, True):
        params = make_params()
        opt = optim.Adam(params, lr=0.1)
        for step_grads in gradient_sequence(params, steps=3):
            for p, g in zip(params, step_grads):
                if use_views and opt._flat is not None:
                    view = optim.GRAD_BUFFERS[p]
                    view[...] = g
                    p.grad = ndl.Tensor.make_const(view)
                else:
                    p.grad = ndl.Tensor(g, requires_grad=False)
            opt.step()
        results.append([p.numpy().copy() for p in params])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_adam_follows_a_change_of_betas_mid_run():
    params = make_params()
    start = [p.numpy().copy() for p in params]
    grads = gradient_sequence(params, steps=4)
    opt = optim.Adam(params, lr=0.01, beta1=0.9, beta2=0.99)
    run(opt, params, grads[:2])
    opt.beta1, opt.beta2 = 0.5, 0.9
    history = run(opt, params, grads[2:])
    # reference: textbook Adam whose betas change after step 2 (bias corrections use the new betas)
    w = [x.astype(np.float64) for x in start]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, step_grads in enumerate(grads, start=1):
        b1, b2 = (0.9, 0.99) if t <= 2 else (0.5, 0.9)
        for i, g in enumerate(step_grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            w[i] = w[i] - 0.01 * (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + 1e-8)
    for got, want in zip(history[-1], w):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("betas", [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.9)])
def test_adam_rejects_betas_outside_0_1(betas):
    with pytest.raises(ValueError):
        optim.Adam(make_params(), beta1=betas[0], beta2=betas[1])
