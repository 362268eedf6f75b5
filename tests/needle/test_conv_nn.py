"""needle.nn conv modules: course init, shapes, modes, state_dict and learning on images."""
import contextlib

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import needle as ndl
from needle import nn, optim

from ..images import oriented_bars


def test_conv_reproduces_the_course_init():
    np.random.seed(3)
    k, c_in, c_out = 3, 2, 4
    bound = np.sqrt(2.0) * np.sqrt(3.0 / (c_in * k * k))  # Kaiming uniform, fan_in = C_in*K*K
    expected_w = np.random.rand(k, k, c_in, c_out) * 2 * bound - bound
    bias_bound = 1.0 / np.sqrt(c_in * k * k)
    expected_b = np.random.rand(c_out) * 2 * bias_bound - bias_bound
    np.random.seed(3)
    layer = nn.Conv(c_in, c_out, k)
    assert layer.weight.shape == (k, k, c_in, c_out) and layer.bias.shape == (c_out,)
    assert layer.weight.dtype == np.float32 and layer.padding == 1
    np.testing.assert_allclose(layer.weight.numpy(), expected_w, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), expected_b, rtol=1e-6)
    assert nn.Conv(c_in, c_out, k, bias=False).bias is None


@pytest.mark.parametrize("kernel,stride,size,expected", [(3, 1, 9, 9), (3, 2, 9, 5), (4, 1, 8, 9),
                                                         (5, 2, 7, 4), (1, 2, 7, 4)])
def test_conv_same_padding_output_sizes(kernel, stride, size, expected):
    out = nn.Conv(2, 3, kernel, stride=stride)(ndl.Tensor(np.ones((1, 2, size, size), np.float32)))
    assert out.shape == (1, 3, expected, expected) and out.dtype == np.float32


def test_pool_modules_default_stride_is_the_kernel():
    x = ndl.Tensor(np.arange(2 * 3 * 7 * 5, dtype=np.float32).reshape(2, 3, 7, 5))
    assert nn.MaxPool2d(2)(x).shape == (2, 3, 3, 2)
    assert nn.AvgPool2d(3, stride=1)(x).shape == (2, 3, 5, 3)
    assert nn.MaxPool2d(2)(x).numpy()[0, 0, 0, 0] == 6.0  # max of [[0, 1], [5, 6]]


def test_batchnorm2d_state_and_modes():
    layer = nn.BatchNorm2d(3)
    assert list(layer.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32) + 2
    out = layer(ndl.Tensor(x)).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(layer.running_mean.numpy(), 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    layer.eval()
    single = layer(ndl.Tensor(x[:1])).numpy()  # eval: each image is independent of the batch
    np.testing.assert_allclose(single, layer(ndl.Tensor(x)).numpy()[:1], rtol=1e-6)


def small_cnn(classes: int = 4) -> nn.Sequential:
    return nn.Sequential(nn.Conv(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv(8, 8, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 2 * 2, classes))


def test_state_dict_round_trip_with_conv_layers():
    np.random.seed(0)
    model = small_cnn()
    keys = list(model.state_dict())
    assert keys[:6] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"]
    model(ndl.Tensor(np.random.randn(3, 1, 8, 8).astype(np.float32)))  # moves the running stats
    state = model.state_dict()
    np.random.seed(1)
    other = small_cnn().load_state_dict(state)
    x = ndl.Tensor(np.random.randn(2, 1, 8, 8).astype(np.float32))
    model.eval(), other.eval()
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())
    bad = dict(state, **{"0.weight": np.zeros((3, 3, 2, 8))})
    with pytest.raises(ValueError, match="0.weight"):
        other.load_state_dict(bad)


def test_cnn_learns_oriented_bars_to_near_zero_error():
    x, y = oriented_bars(800, size=8, seed=0)
    x_test, y_test = oriented_bars(200, size=8, seed=1)
    np.random.seed(0)
    model = small_cnn()
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.SoftmaxLoss()
    for _ in range(8):
        order = np.random.permutation(len(y))
        for start in range(0, len(y), 32):
            rows = order[start:start + 32]
            opt.reset_grad()
            loss = loss_fn(model(ndl.Tensor(x[rows])), ndl.Tensor(y[rows]))
            loss.backward()
            opt.step()
    model.eval()
    with ndl.no_grad():
        train_error = np.mean(model(ndl.Tensor(x)).numpy().argmax(1) != y)
        test_error = np.mean(model(ndl.Tensor(x_test)).numpy().argmax(1) != y_test)
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert train_error <= 0.01, train_error
    assert test_error <= 0.03, test_error


def test_sequential_fuses_batchnorm2d_with_relu_but_not_dropout():
    """Sequential(BatchNorm2d, ReLU, Dropout) in training: the fused BatchNorm+ReLU gives what the
    modules give one by one (outputs, gradients, running statistics, dropout draws)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    weight = rng.standard_normal(3).astype(np.float32)  # some negative: ReLU cuts on both sides
    results = []
    for fused in (True, False):
        np.random.seed(0)
        norm, relu, drop = nn.BatchNorm2d(3), nn.ReLU(), nn.Dropout(0.3)
        norm.weight = nn.Parameter(ndl.Tensor(weight))
        inp = ndl.Tensor(x, requires_grad=True)
        out = nn.Sequential(norm, relu, drop)(inp) if fused else drop(relu(norm(inp)))
        (out * out).sum().backward()
        results.append((out.numpy(), inp.grad.numpy(), norm.weight.grad.numpy(),
                        norm.running_mean.numpy(), norm.running_var.numpy()))
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# BatchNorm2d weights: with every one > 0 the fused op pools first and normalises the maxima
WEIGHTS = {"mixed-signs": (-1.5, 1.5), "positive": (0.5, 1.5)}


def _stage(x, fused, threads=None, weights="mixed-signs"):
    """Sequential(BatchNorm2d, ReLU, MaxPool2d(2)) on x (fused: as Sequential runs it, else the
    modules one by one): output, input and weight gradients, running statistics."""
    if threads is not None:
        ndl.parallel.set_num_threads(threads)
    np.random.seed(0)
    norm, relu, pool = nn.BatchNorm2d(x.shape[1]), nn.ReLU(), nn.MaxPool2d(2)
    norm.weight = nn.Parameter(ndl.Tensor(np.linspace(*WEIGHTS[weights], x.shape[1], dtype=np.float32)))
    # NHWC memory seen as NCHW, as a conv hands it on
    inp = ndl.Tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2), requires_grad=True)
    out = nn.Sequential(norm, relu, pool)(inp) if fused else pool(relu(norm(inp)))
    (out * out).sum().backward()
    ops = {type(node.op) for node in ndl.autograd.find_topo_sort([out])}
    return (out.numpy(), inp.grad.numpy(), norm.weight.grad.numpy(), norm.bias.grad.numpy(),
            norm.running_mean.numpy(), norm.running_var.numpy()), ops


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("shape", [(8, 16, 32, 32), (4, 3, 6, 6), (2, 3, 7, 6)],
                         ids=["block-passes", "small", "odd-height"])
def test_sequential_fuses_batchnorm2d_relu_and_a_2x2_max_pool(shape, weights):
    """The fused op gives the modules' forward bit for bit on arrays big enough for the block
    passes, and their gradients and statistics to float32 rounding; an odd size is not fused."""
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32) * 2 + 1
    (fused, fused_ops), (plain, plain_ops) = _stage(x, True, weights=weights), _stage(x, False, weights=weights)
    fuses = shape[2] % 2 == 0 and shape[3] % 2 == 0
    assert (ndl.ops.BatchNormReLUMaxPool2 in fused_ops) == fuses
    assert ndl.ops.BatchNormReLUMaxPool2 not in plain_ops
    if np.prod(shape) >= ndl.parallel.MIN_ELEMENTS:
        np.testing.assert_array_equal(fused[0], plain[0])
    for got, expected in zip(fused, plain):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_the_fused_stage_is_bit_identical_for_one_to_four_threads(weights):
    x = np.random.default_rng(7).standard_normal((8, 16, 32, 32)).astype(np.float32)
    before = ndl.parallel.get_num_threads()
    try:
        with threadpool_limits(1, user_api="blas"):
            results = [_stage(x, True, threads, weights)[0] for threads in (1, 2, 3, 4)]
    finally:
        ndl.parallel.set_num_threads(before)
    for other in results[1:]:
        for one, two in zip(results[0], other):
            np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_the_fused_stage_on_an_input_without_gradient_still_trains_its_parameters(weights):
    """BatchNorm2d first in a model (its input the data): no input gradient, and the weight and
    bias gradients as the modules' one by one."""
    x = np.random.default_rng(8).standard_normal((8, 16, 32, 32)).astype(np.float32)
    grads = []
    for fused in (True, False):
        np.random.seed(0)
        norm, relu, pool = nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
        norm.weight = nn.Parameter(ndl.Tensor(np.linspace(*WEIGHTS[weights], 16, dtype=np.float32)))
        inp = ndl.Tensor(x, requires_grad=False)
        out = nn.Sequential(norm, relu, pool)(inp) if fused else pool(relu(norm(inp)))
        (out * out).sum().backward()
        assert inp.grad is None
        grads.append((norm.weight.grad.numpy(), norm.bias.grad.numpy()))
    for got, expected in zip(*grads):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


def test_a_replayed_fused_stage_follows_its_weights_across_the_pool_first_switch():
    """Recorded with positive weights (pooled first), replayed after one weight turned negative
    (normalised first) and back: every step's gradients as define-by-run's."""
    x = np.random.default_rng(9).standard_normal((8, 16, 32, 32)).astype(np.float32)

    def steps(replay):
        np.random.seed(0)
        norm = nn.BatchNorm2d(16)
        model = nn.Sequential(norm, nn.ReLU(), nn.MaxPool2d(2))
        grads = []
        for weights in ((0.5, 1.5), (0.5, 1.5), (-0.5, 1.5), (0.5, 1.5)):
            norm.weight.data = np.linspace(*weights, 16, dtype=np.float32)
            inp = ndl.Tensor(x, requires_grad=True)
            with (contextlib.nullcontext() if replay else ndl.capture.disabled()):
                out = model(inp)
            (out * out).sum().backward()
            grads.append((inp.grad.numpy().copy(), norm.weight.grad.numpy().copy()))
        return grads
    for replayed, plain in zip(steps(True), steps(False)):
        for got, expected in zip(replayed, plain):
            np.testing.assert_array_equal(got, expected)
