"""needle.parallel: big array work split over threads, with results that never depend on the count."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import needle as ndl
from needle import nn, parallel


@pytest.fixture
def threads():
    """Set needle's thread count inside a test; restored afterwards. BLAS runs one thread, as
    needle.parallel asks (and the service's workers do): OpenBLAS's own threads split a GEMM's rows
    wherever it likes, which changes the last bits of some rows with its Haswell/Zen kernels."""
    before = parallel.get_num_threads()
    with threadpool_limits(1, user_api="blas"):
        yield parallel.set_num_threads
    parallel.set_num_threads(before)


def test_split_covers_the_range_once_and_keeps_small_work_whole(threads):
    threads(3)
    parts = parallel.split(10, parallel.MIN_ELEMENTS)
    assert [(p.start, p.stop) for p in parts] == [(0, 3), (3, 6), (6, 10)]
    assert parallel.split(10, parallel.MIN_ELEMENTS - 1) == [slice(0, 10)]
    assert parallel.split(2, parallel.MIN_ELEMENTS) == [slice(0, 1), slice(1, 2)]  # at most one per row


def test_run_runs_every_part_once_on_separate_threads(threads):
    threads(3)
    seen, names = np.zeros(30, dtype=int), set()  # names: thread ids

    def part_fn(part):
        seen[part] += 1
        names.add(threading.get_ident())
        parallel.run(lambda inner: None, 8, parallel.MIN_ELEMENTS)  # nested: stays on this thread
    parallel.run(part_fn, 30, parallel.MIN_ELEMENTS)
    assert (seen == 1).all()
    assert len(names) == 3


def test_an_error_in_a_worker_part_reaches_the_caller(threads):
    threads(2)

    def part_fn(part):
        if part.start > 0:
            raise ValueError("part failed")
    with pytest.raises(ValueError, match="part failed"):
        parallel.run(part_fn, 4, parallel.MIN_ELEMENTS)
    parallel.run(lambda part: None, 4, parallel.MIN_ELEMENTS)  # the workers are usable again


def _cnn_run(steps: int = 3):
    """Losses and final parameters of a few CNN training steps on arrays big enough to split."""
    np.random.seed(0)
    model = nn.Sequential(nn.Conv(1, 16, 3), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv(16, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 7 * 7, 4))
    optimizer = ndl.optim.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    x = rng.random((32, 1, 28, 28), dtype=np.float32)  # first BatchNorm2d: 401,408 values
    y = rng.integers(0, 4, 32)
    losses = []
    for _ in range(steps):
        optimizer.reset_grad()
        loss = nn.SoftmaxLoss()(model(ndl.Tensor(x)), ndl.Tensor(y))
        loss.backward()
        optimizer.step()
        losses.append(loss.numpy())
    return losses, [p.numpy().copy() for p in model.parameters()]


def test_cnn_training_is_bit_identical_with_one_and_two_threads(threads):
    threads(1)
    losses_one, params_one = _cnn_run()
    threads(2)
    losses_two, params_two = _cnn_run()
    assert losses_one == losses_two
    for one, two in zip(params_one, params_two):
        np.testing.assert_array_equal(one, two)


def test_two_callers_at_once_both_get_right_answers(threads):
    threads(2)
    rng = np.random.default_rng(2)
    a = rng.random((32, 28, 28, 8), dtype=np.float32)
    b = rng.random((3, 3, 8, 8), dtype=np.float32)
    expected = ndl.ops.conv(ndl.Tensor(a), ndl.Tensor(b), padding=1).numpy()
    results = []

    def call():
        for _ in range(5):
            results.append(ndl.ops.conv(ndl.Tensor(a), ndl.Tensor(b), padding=1).numpy())
    callers = [threading.Thread(target=call) for _ in range(2)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(results) == 10
    for result in results:
        np.testing.assert_array_equal(result, expected)


def _layer_outputs_and_gradients(layer, x):
    """layer(x) and d sum(layer(x) * weights) / dx, as numpy arrays."""
    tensor = ndl.Tensor(x, requires_grad=True)
    out = layer(tensor)
    weights = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
    (out * ndl.Tensor(weights)).sum().backward()
    return out.numpy(), tensor.grad.numpy()


@pytest.mark.parametrize("make_layer, channels", [
    (lambda: nn.MaxPool2d(3, stride=2), 8),  # overlapping windows: gradients add up
    (lambda: nn.AvgPool2d(2), 8),
    (lambda: nn.Conv(1, 8, 5, stride=2), 1),  # few input channels: the channel-major im2col
    (lambda: nn.Conv(8, 8, 3, bias=False), 8),
], ids=["maxpool-overlapping", "avgpool", "conv-1-channel-stride-2", "conv-8-channels"])
def test_each_split_layer_is_bit_identical_with_one_and_two_threads(threads, make_layer, channels):
    x = np.random.default_rng(4).standard_normal((32, channels, 33, 33)).astype(np.float32)
    results = {}
    for count in (1, 2):
        threads(count)
        np.random.seed(0)  # the same initial weights
        results[count] = _layer_outputs_and_gradients(make_layer(), x)
    for one, two in zip(results[1], results[2]):
        np.testing.assert_array_equal(one, two)
