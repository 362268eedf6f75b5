"""needle.capture: a replayed step equals define-by-run bit for bit, and anything new falls back."""
import gc
from contextlib import nullcontext

import numpy as np
import pytest

import needle as ndl
from needle import autograd, capture, nn
from needle.capture import ReplayedCall
from needle.nn import functional as F

BATCH, FEATURES, CLASSES = 8, 6, 3


def make_model(norm=nn.BatchNorm1d, seed=0):
    np.random.seed(seed)
    return ndl.models.MLPResNet(FEATURES, 16, num_blocks=2, num_classes=CLASSES, norm=norm, drop_prob=0.2)


def batches(steps, seed=1, rows=BATCH):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, FEATURES)).astype(np.float32), rng.integers(0, CLASSES, rows))
            for _ in range(steps)]


def train(model, opt, data, seed=5, each_step=None, before_step=None):
    """The course's loop; returns (losses, output ops seen). np.random drives the dropout masks;
    each_step(step, model, opt) runs before each step's reset_grad, before_step(model) between its
    backward and opt.step()."""
    np.random.seed(seed)
    losses, ops = [], []
    for step, (x, y) in enumerate(data):
        if each_step is not None:
            each_step(step, model, opt)
        opt.reset_grad()
        out = model(ndl.Tensor(x, requires_grad=False))
        loss = nn.SoftmaxLoss()(out, ndl.Tensor(y, requires_grad=False))
        loss.backward()
        if before_step is not None:
            before_step(model)
        opt.step()
        losses.append(float(loss.numpy()))
        ops.append(type(out.op))
    return losses, ops


def run_both(make, steps=6, data=None, each_step=None, optimizer=None, before_step=None):
    """(captured, define-by-run) results of the same training: losses, ops, final state."""
    optimizer = optimizer or (lambda params: ndl.optim.Adam(params, lr=0.01, weight_decay=0.01))
    data = data or batches(steps)
    results = []
    for disabled in (False, True):
        model = make()
        opt = optimizer(model.parameters())
        with capture.disabled() if disabled else nullcontext():
            losses, ops = train(model, opt, data, each_step=each_step, before_step=before_step)
        results.append((losses, ops, model.state_dict(), opt.state_dict()))
    return results


def assert_identical(captured, plain):
    assert captured[0] == plain[0]  # losses, bit for bit
    for key in plain[2]:
        assert np.array_equal(captured[2][key], plain[2][key]), key  # parameters and running stats
    for index, bufs in plain[3]["state"].items():
        for name, buf in bufs.items():
            assert np.array_equal(captured[3]["state"][index][name], buf), (index, name)


@pytest.mark.parametrize("norm", [nn.BatchNorm1d, nn.LayerNorm1d])
@pytest.mark.parametrize("optimizer", [lambda p: ndl.optim.Adam(p, lr=0.01, weight_decay=0.01),
                                       lambda p: ndl.optim.SGD(p, lr=0.1, momentum=0.9)])
def test_replay_equals_define_by_run_bit_for_bit(norm, optimizer):
    captured, plain = run_both(lambda: make_model(norm), optimizer=optimizer)
    assert_identical(captured, plain)
    assert captured[1][0] is not ReplayedCall  # the first step records
    assert set(captured[1][1:]) == {ReplayedCall}  # every repeat replays
    assert ReplayedCall not in plain[1]


def test_a_partial_last_batch_gets_its_own_tape():
    data = batches(3) + batches(1, seed=2, rows=5) + batches(2, seed=3) + batches(2, seed=4, rows=5)
    captured, plain = run_both(make_model, data=data)
    assert_identical(captured, plain)
    assert [op is ReplayedCall for op in captured[1]] == [False, True, True, False, True, True, True, True]


def _change_dropout(step, model, opt):
    if step == 3:
        model.modules[2].modules[0].fn.modules[3].p = 0.5


def _eval_then_train(step, model, opt):
    if step == 2:
        model.eval()
    if step == 4:
        model.train()


def _reload_weights(step, model, opt):
    if step == 3:  # new arrays for every parameter (as a checkpoint restore does)
        model.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})


def _freeze_first_layer(step, model, opt):
    if step == 3:
        model.modules[0].weight.requires_grad = False


def _swap_a_module(step, model, opt):
    if step == 3:
        model.modules = model.modules[:1] + (nn.Identity(),) + model.modules[2:]


@pytest.mark.parametrize("change, replays", [
    (_change_dropout, [False, True, True, False, True, True]),   # hyperparameter: record again
    (_eval_then_train, [False, True, False, False, True, True]),  # eval is never replayed; train reuses its tape
    (_reload_weights, [False, True, True, True, True, True]),     # same shapes: replay reads new arrays
    (_freeze_first_layer, [False, True, True, False, True, True]),
    (_swap_a_module, [False, True, True, False, True, True]),
])
def test_a_change_falls_back_to_define_by_run_and_stays_exact(change, replays):
    captured, plain = run_both(make_model, each_step=change)
    assert_identical(captured, plain)
    assert [op is ReplayedCall for op in captured[1]] == replays


def test_frozen_parameter_gets_no_gradient_in_replay():
    model = make_model()
    model.modules[0].weight.requires_grad = False
    x = ndl.Tensor(batches(1)[0][0], requires_grad=False)
    for _ in range(2):
        out = model(x)
        out.sum().backward()
    assert isinstance(out.op, ReplayedCall)
    assert model.modules[0].weight.grad is None and model.modules[0].bias.grad is not None


def test_a_replayed_backward_leaves_a_frozen_parameters_grad_alone():
    """As define-by-run: a leaf that requires no gradient is not visited, so its .grad stays."""
    model = make_model()
    weight = model.modules[0].weight
    weight.requires_grad = False
    x = ndl.Tensor(batches(1)[0][0], requires_grad=False)
    model(x)
    kept = ndl.Tensor(np.ones(weight.shape, np.float32))
    weight.grad = kept
    out = model(x)
    out.sum().backward()
    assert isinstance(out.op, ReplayedCall)
    assert weight.grad is kept and model.modules[0].bias.grad is not None


def test_rebinding_a_functional_switch_falls_back(monkeypatch):
    model = make_model()
    x = ndl.Tensor(batches(1)[0][0], requires_grad=False)
    model(x), model(x)
    assert isinstance(model(x).op, ReplayedCall)
    monkeypatch.setattr(F, "linear", F.linear_composite)
    capture.bump_epoch()  # a rebinding is no attribute set on a module: noticed at the next validation
    assert not isinstance(model(x).op, ReplayedCall)


def test_gradient_reaches_an_input_that_requires_it():
    model = make_model()
    data = batches(1)[0][0]
    grads = []
    for enabled in (True, False):
        np.random.seed(2)
        for _ in range(3):
            x = ndl.Tensor(data)  # requires_grad=True
            if enabled:
                out = model(x)
            else:
                with capture.disabled():
                    out = model(x)
            (out * out).sum().backward()
        grads.append((type(out.op), x.grad.numpy()))
    assert grads[0][0] is ReplayedCall and grads[1][0] is not ReplayedCall
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_two_replays_before_backward_keep_their_own_state():
    model = make_model()
    (x1, _), (x2, _) = batches(2)
    model(ndl.Tensor(x1, requires_grad=False))  # record
    results = []
    for enabled in (True, False):
        np.random.seed(9)
        context = capture.disabled() if not enabled else nullcontext()
        with context:
            a = model(ndl.Tensor(x1, requires_grad=False))
            b = model(ndl.Tensor(x2, requires_grad=False))
            b.sum().backward()
            grad_b = model.modules[0].weight.grad.numpy().copy()
            a.sum().backward()  # after b's replay: a's saved state must still be a's
            results.append((type(a.op), grad_b, model.modules[0].weight.grad.numpy().copy()))
    assert results[0][0] is ReplayedCall
    for got, want in zip(results[0][1:], results[1][1:]):
        np.testing.assert_array_equal(got, want)


def test_a_parameter_also_used_outside_the_model():
    """An L2 penalty on a weight adds a second partial to a replayed leaf: summed as usual."""
    def penalty_step(model):
        w = model.modules[0].weight
        out = model(ndl.Tensor(batches(1)[0][0], requires_grad=False))
        (out.sum() + (w * w).sum()).backward()
        return type(out.op), w.grad.numpy().copy()
    results = []
    for enabled in (True, False):
        model = make_model()
        np.random.seed(4)
        with (nullcontext() if enabled else capture.disabled()):
            for _ in range(3):
                kind, grad = penalty_step(model)
        results.append((kind, grad))
    assert results[0][0] is ReplayedCall
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-6, atol=1e-7)


class Custom(nn.Module):
    """A user module: its forward may do anything, so it is never replayed."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(FEATURES, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.layer(x)


def test_custom_modules_and_no_grad_run_define_by_run():
    custom = Custom()
    x = ndl.Tensor(batches(1)[0][0], requires_grad=False)
    outs = [custom(x) for _ in range(3)]
    assert custom.calls == 3 and not any(isinstance(o.op, ReplayedCall) for o in outs)
    model = make_model()
    model(x), model(x)
    with ndl.no_grad():
        assert model(x).op is None


def test_replayed_steps_leak_no_tensors():
    model = make_model()
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    data = batches(8)
    train(model, opt, data[:3])
    gc.collect()  # other tests' garbage must not be collected in between
    before = autograd.TENSOR_COUNTER
    train(model, opt, data[3:])
    gc.collect()
    assert autograd.TENSOR_COUNTER == before


def test_backward_twice_on_a_replayed_step_gives_the_same_gradients():
    model = make_model()
    x = ndl.Tensor(batches(1)[0][0], requires_grad=False)
    model(x)
    out = model(x)
    assert isinstance(out.op, ReplayedCall)
    out.sum().backward()
    first = [p.grad.numpy().copy() for p in model.parameters()]
    out.sum().backward()
    for got, want in zip([p.grad.numpy() for p in model.parameters()], first):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("case", ["float64 input", "float64 adjoint"])
def test_mixed_dtypes_replay_equal_to_define_by_run(case):
    """A float32 model fed float64 data, or reached by a float64 adjoint, computes float64
    gradients: they must not be written into the float32 gradient buffer (other rounding)."""
    data = batches(4)
    results = []
    for disabled in (False, True):
        model = make_model()
        opt = ndl.optim.Adam(model.parameters(), lr=0.01)
        with capture.disabled() if disabled else nullcontext():
            for x, _ in data:
                opt.reset_grad()
                if case == "float64 input":
                    loss = model(ndl.Tensor(x.astype(np.float64))).sum()
                else:
                    loss = (model(ndl.Tensor(x)) * ndl.Tensor(np.full((BATCH, CLASSES), 0.5))).sum()
                loss.backward()
                opt.step()
        assert {str(p.grad.dtype) for p in model.parameters()} == {"float64"}
        results.append([p.numpy().copy() for p in model.parameters()])
    for captured, plain in zip(*results):
        np.testing.assert_array_equal(captured, plain)


def test_a_replayed_forward_keeps_only_the_arrays_its_backward_reads():
    """The Linear outputs that BatchNorm normalises are not read by any gradient (BatchNorm keeps
    them centred): the replayed forward lets go of them, and the backward is still exact."""
    captured, plain = run_both(make_model)
    assert_identical(captured, plain)
    model = make_model()
    x = ndl.Tensor(batches(1)[0][0])
    model(x)
    out = model(x)
    tape, arrays = out.op.tape, out.op.arrays
    released = {slot for slot, array in enumerate(arrays) if array is None}
    assert released and not released & set(tape.input_slots)
    normalised = {in_slots[0] for op, in_slots, _, _ in tape.entries if type(op).__name__ == "BatchNormTrain"}
    assert normalised <= released  # the Linear outputs each BatchNorm centred
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_replayed_backward_writes_gradients_into_the_optimizer_buffer_but_never_over_held_ones():
    model = make_model()
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    data = batches(5)
    train(model, opt, data[:3])  # recorded, replayed, packed
    weight = model.modules[0].weight
    assert weight.grad.cached_data is ndl.optim.GRAD_BUFFERS[weight]  # no copy into the buffer needed
    held = weight.grad  # a user keeps last step's gradient...
    kept = held.numpy().copy()
    train(model, opt, data[3:])
    np.testing.assert_array_equal(held.numpy(), kept)  # ...and it is not overwritten by later steps
    assert weight.grad is not held


def test_a_held_gradient_array_is_not_overwritten_by_later_steps():
    model = make_model()
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    data = batches(5)
    train(model, opt, data[:3])
    held = model.modules[0].weight.grad.numpy()  # the array only, not its Tensor
    kept = held.copy()
    train(model, opt, data[3:])
    np.testing.assert_array_equal(held, kept)


def _halve_gradients(model):
    """Replace each gradient (`grad.data = ...`) between backward and step."""
    for p in model.parameters():
        p.grad.data = p.grad.numpy() * np.float32(0.5)


def test_gradients_replaced_through_data_stay_exact_in_later_replays():
    captured, plain = run_both(make_model, before_step=_halve_gradients)
    assert_identical(captured, plain)
    assert set(captured[1][1:]) == {ReplayedCall}


def test_a_captured_model_pickles_and_copies_and_the_copy_trains_the_same():
    import copy
    import pickle
    model = make_model()
    opt = ndl.optim.Adam(model.parameters(), lr=0.01)
    train(model, opt, batches(3))  # the model now holds tapes
    clones = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model)]
    data = batches(3, seed=8)
    results = [train(m, ndl.optim.SGD(m.parameters(), lr=0.1), data)[0] for m in [copy.deepcopy(model)] + clones]
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("activation", [nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, lambda: nn.LeakyReLU(0.05)])
def test_other_activations_replay_exactly_through_their_tensor_gradients(activation):
    """These ops have no gradient_arrays: the replayed backward calls their Tensor gradient."""
    def make():
        np.random.seed(0)
        return ndl.models.MLPResNet(FEATURES, 16, num_blocks=1, num_classes=CLASSES, activation=activation)
    captured, plain = run_both(make, steps=4)
    assert_identical(captured, plain)
    assert set(captured[1][1:]) == {ReplayedCall}


def make_cnn(seed=0):
    """Every capturable conv module: biased and unbiased convs, strides 1 and 2, both poolings."""
    np.random.seed(seed)
    return nn.Sequential(
        nn.Conv(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv(4, 6, 3, stride=2, bias=False), nn.BatchNorm2d(6), nn.AvgPool2d(2, stride=1),
        nn.Flatten(), nn.Linear(6 * 1 * 1, CLASSES))


def image_batches(steps, seed=1, rows=BATCH):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((rows, 2, 8, 8)).astype(np.float32), rng.integers(0, CLASSES, rows))
            for _ in range(steps)]


@pytest.mark.parametrize("change, replays", [
    (None, [False, True, True, True, True, True]),
    (_eval_then_train, [False, True, False, False, True, True]),
])
def test_a_cnn_replays_equal_to_define_by_run(change, replays):
    captured, plain = run_both(make_cnn, data=image_batches(6), each_step=change)
    assert_identical(captured, plain)
    assert [op is ReplayedCall for op in captured[1]] == replays


def test_a_replayed_cnn_passes_the_gradient_to_its_image_input():
    model = make_cnn()
    data = image_batches(1)[0][0]
    grads = []
    for enabled in (True, False):
        for _ in range(3):
            x = ndl.Tensor(data)  # requires_grad=True: the first conv's input gradient runs
            with nullcontext() if enabled else capture.disabled():
                out = model(x)
            (out * out).sum().backward()
        grads.append((type(out.op), x.grad.numpy()))
    assert grads[0][0] is ReplayedCall and grads[1][0] is not ReplayedCall
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
