"""AdamW, gradient clipping by global norm and learning-rate schedules: hand-computed values and
PyTorch (skipped without torch)."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn, optim
from needle.lr_schedule import LRSchedule

from .test_optim import assert_histories_close, gradient_sequence, make_params, run, torch_trajectory


def test_adamw_decays_weights_independently_of_the_gradient():
    param = nn.Parameter(np.array([2.0, -4.0], dtype=np.float32))
    opt = optim.AdamW([param], lr=0.1, weight_decay=0.5)
    param.grad = ndl.Tensor(np.zeros(2, dtype=np.float32), requires_grad=False)
    opt.step()  # zero gradient: Adam's step is 0, only the decoupled decay acts
    np.testing.assert_allclose(param.numpy(), np.array([2.0, -4.0]) * (1 - 0.1 * 0.5), rtol=1e-6)
    assert param.numpy().dtype == np.float32


def test_adamw_state_round_trip_is_bit_identical():
    grads = gradient_sequence(make_params(), steps=4)
    params = make_params()
    straight = run(optim.AdamW(params, lr=0.01, weight_decay=0.1), params, grads)[-1]
    params = make_params()
    opt = optim.AdamW(params, lr=0.01, weight_decay=0.1)
    run(opt, params, grads[:2])
    state = opt.state_dict()
    opt = optim.AdamW(params, lr=0.01, weight_decay=0.1)
    opt.load_state_dict(state)
    resumed = run(opt, params, grads[2:])[-1]
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_adamw_matches_torch():
    torch = pytest.importorskip("torch")
    grads = gradient_sequence(make_params(), steps=6)
    params = make_params()
    start = [p.numpy().copy() for p in params]
    ours = run(optim.AdamW(params, lr=0.01, weight_decay=0.2), params, grads)
    theirs = torch_trajectory(torch, lambda ts: torch.optim.AdamW(ts, lr=0.01, weight_decay=0.2),
                              start, grads)
    assert_histories_close(ours, theirs, rtol=1e-5, atol=1e-6)


def _with_grads(grads):
    params = [nn.Parameter(ndl.Tensor(np.zeros_like(g), dtype=str(g.dtype))) for g in grads]
    for p, g in zip(params, grads):
        p.grad = ndl.Tensor(g, dtype=str(g.dtype), requires_grad=False)
    return params


def test_clip_grad_norm_scales_to_the_bound_and_reports_the_norm():
    grads = [np.array([3.0, 0.0], dtype=np.float32), np.array([[4.0]], dtype=np.float32)]
    params = _with_grads(grads)
    total = nn.clip_grad_norm(params, 1.0)
    assert total == pytest.approx(5.0)
    clipped = np.concatenate([p.grad.numpy().reshape(-1) for p in params])
    np.testing.assert_allclose(clipped, np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-6), rtol=1e-6)
    assert params[0].grad.dtype == "float32"
    assert grads[0][0] == 3.0  # the original arrays are untouched


def test_clip_grad_norm_leaves_small_gradients_alone():
    params = _with_grads([np.array([0.3, 0.4])])
    before = params[0].grad
    assert nn.clip_grad_norm(params, 1.0) == pytest.approx(0.5)
    assert params[0].grad is before


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal((4, 3)), rng.standard_normal(3)]
    params = _with_grads(grads)
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g)
    want = torch.nn.utils.clip_grad_norm_(tensors, 0.5).item()
    assert nn.clip_grad_norm(params, 0.5) == pytest.approx(want, rel=1e-12)
    for p, t in zip(params, tensors):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_warmup_then_constant():
    schedule = LRSchedule(0.1, "constant", warmup_steps=4)
    assert [schedule.lr_at(s) for s in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_step_schedule_decays_every_step_size_epochs():
    schedule = LRSchedule(1.0, "step", steps_per_epoch=3, step_size=2, gamma=0.5)
    assert [schedule.lr_at(s) for s in range(0, 15, 3)] == pytest.approx([1, 1, 0.5, 0.5, 0.25])


def test_cosine_reaches_min_lr_at_the_last_step_after_warmup():
    schedule = LRSchedule(1.0, "cosine", warmup_steps=2, total_steps=12, min_lr=0.1)
    assert schedule.lr_at(1) == pytest.approx(1.0)  # end of warmup
    assert schedule.lr_at(2) == pytest.approx(1.0)
    assert schedule.lr_at(7) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert schedule.lr_at(12) == pytest.approx(0.1)
    assert schedule.lr_at(50) == pytest.approx(0.1)  # past the plan (a longer resumed run) stays at min


def test_schedules_match_torch_lr_schedulers():
    torch = pytest.importorskip("torch")
    steps_per_epoch, epochs = 4, 6

    def torch_rates(make_scheduler, per_step):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
        scheduler = make_scheduler(opt)
        rates = []
        for step in range(steps_per_epoch * epochs):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()  # no gradient: a no-op, but torch expects it before scheduler.step()
            if per_step or (step + 1) % steps_per_epoch == 0:
                scheduler.step()
        return rates

    step_torch = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.3), False)
    ours = LRSchedule(0.2, "step", steps_per_epoch=steps_per_epoch, step_size=2, gamma=0.3)
    assert [ours.lr_at(s) for s in range(24)] == pytest.approx(step_torch, rel=1e-12)
    total = steps_per_epoch * epochs
    cos_torch = torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.01),
                            True)
    ours = LRSchedule(0.2, "cosine", total_steps=total, min_lr=0.01)
    assert [ours.lr_at(s) for s in range(24)] == pytest.approx(cos_torch, rel=1e-9)
