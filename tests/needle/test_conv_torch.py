"""Conv, pooling and BatchNorm2d against PyTorch (forward and backward); skipped without torch."""
import numpy as np
import pytest

import needle as ndl
from needle import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(11)


def _t(array):
    return torch.tensor(array, requires_grad=True)


def _n(array):
    return ndl.Tensor(array, dtype="float64")


def _close(ours, theirs, tol=1e-10):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 2])
@pytest.mark.parametrize("channels", [3, 5])  # both im2col paths (few / many channels)
def test_conv_op_matches_torch(kernel, stride, padding, channels):
    a = RNG.standard_normal((2, 9, 7, channels))
    b = RNG.standard_normal((kernel, kernel, channels, 4))
    na, nb = _n(a), _n(b)
    out = ndl.conv(na, nb, stride=stride, padding=padding)
    ta, tb = _t(a), _t(b)
    t_out = F.conv2d(ta.permute(0, 3, 1, 2), tb.permute(3, 2, 0, 1), stride=stride,
                     padding=padding).permute(0, 2, 3, 1)
    _close(out, t_out)
    projection = RNG.standard_normal(out.shape)
    (out * ndl.Tensor(projection, dtype="float64")).sum().backward()
    (t_out * torch.tensor(projection)).sum().backward()
    _close(na.grad, ta.grad)
    _close(nb.grad, tb.grad)


@pytest.mark.parametrize("kernel,stride", [(1, 1), (2, 1), (3, 2), (4, 2), (5, 1)])
def test_conv_module_matches_torch_conv2d_with_same_padding(kernel, stride):
    layer = nn.Conv(3, 5, kernel, stride=stride, dtype="float64")
    t_layer = torch.nn.Conv2d(3, 5, kernel, stride=stride, padding=kernel // 2, dtype=torch.float64)
    with torch.no_grad():
        t_layer.weight.copy_(torch.tensor(layer.weight.numpy().transpose(3, 2, 0, 1)))
        t_layer.bias.copy_(torch.tensor(layer.bias.numpy()))
    x = RNG.standard_normal((2, 3, 11, 8))
    nx, tx = _n(x), _t(x)
    out, t_out = layer(nx), t_layer(tx)
    assert out.shape == tuple(t_out.shape)
    _close(out, t_out)
    projection = RNG.standard_normal(out.shape)
    (out * ndl.Tensor(projection, dtype="float64")).sum().backward()
    (t_out * torch.tensor(projection)).sum().backward()
    _close(nx.grad, tx.grad)
    _close(layer.weight.grad, t_layer.weight.grad.permute(2, 3, 1, 0))
    _close(layer.bias.grad, t_layer.bias.grad)


POOLS = [(1, None), (2, None), (2, 1), (3, 2), (3, 1), (4, None), (5, 2)]


@pytest.mark.parametrize("kernel,stride", POOLS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_matches_torch_including_ties(kind, kernel, stride):
    # small integers: many ties, where the gradient must go to the first maximum as in PyTorch
    x = RNG.integers(0, 3, (2, 3, 9, 7)).astype(np.float64)
    module = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(kernel, stride)
    t_module = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(kernel, stride)
    nx, tx = _n(x), _t(x)
    out, t_out = module(nx), t_module(tx)
    assert out.shape == tuple(t_out.shape)
    _close(out, t_out)
    projection = RNG.standard_normal(out.shape)
    (out * ndl.Tensor(projection, dtype="float64")).sum().backward()
    (t_out * torch.tensor(projection)).sum().backward()
    _close(nx.grad, tx.grad)


@pytest.mark.parametrize("channels_last", [False, True])
def test_2x2_max_pool_tiling_the_input_matches_torch_including_ties(channels_last):
    # the 2x2 fast path (pairwise maxima and picks) on inputs it tiles exactly, in NCHW memory
    # and in the NHWC memory a conv leaves behind (an NCHW view); ties in every arrangement
    x = RNG.integers(0, 3, (3, 4, 8, 6)).astype(np.float64)
    tx = _t(x)
    if channels_last:  # an NCHW view of NHWC memory, as nn.Conv hands on
        leaf = _n(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))  # (N, H, W, C)
        nx = ndl.transpose(ndl.transpose(leaf, (2, 3)), (1, 2))
        assert not nx.numpy().flags.c_contiguous and nx.numpy().transpose(0, 2, 3, 1).flags.c_contiguous
    else:
        leaf = nx = _n(x)
    out, t_out = nn.MaxPool2d(2)(nx), torch.nn.MaxPool2d(2)(tx)
    _close(out, t_out)
    projection = RNG.standard_normal(out.shape)
    (out * ndl.Tensor(projection, dtype="float64")).sum().backward()
    (t_out * torch.tensor(projection)).sum().backward()
    grad = leaf.grad.numpy().transpose(0, 3, 1, 2) if channels_last else leaf.grad.numpy()
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-10, atol=1e-10)


def _batchnorm2d_twins(channels, lowest_weight):
    """A float64 BatchNorm2d with random weights (uniform in [lowest_weight, 1.5]) and biases, and
    a PyTorch BatchNorm2d holding the same."""
    layer = nn.BatchNorm2d(channels, momentum=0.1, dtype="float64")
    layer.weight.data = RNG.uniform(lowest_weight, 1.5, channels)
    layer.bias.data = RNG.standard_normal(channels)
    t_layer = torch.nn.BatchNorm2d(channels, momentum=0.1, dtype=torch.float64)
    with torch.no_grad():
        t_layer.weight.copy_(torch.tensor(layer.weight.numpy()))
        t_layer.bias.copy_(torch.tensor(layer.bias.numpy()))
    return layer, t_layer


def _check_batchnorm2d_against_torch(inputs, outputs, layers):
    """Forward outputs, then the gradients of a random projection of them (input, weight, bias)
    and the running mean, each as PyTorch's."""
    (nx, tx), (out, t_out), (layer, t_layer) = inputs, outputs, layers
    _close(out, t_out)
    projection = RNG.standard_normal(out.shape)
    (out * ndl.Tensor(projection, dtype="float64")).sum().backward()
    (t_out * torch.tensor(projection)).sum().backward()
    _close(nx.grad, tx.grad)
    _close(layer.weight.grad, t_layer.weight.grad)
    _close(layer.bias.grad, t_layer.bias.grad)
    _close(layer.running_mean, t_layer.running_mean)


def test_batchnorm2d_train_and_eval_match_torch():
    n, c, h, w = 3, 4, 5, 3
    layer, t_layer = _batchnorm2d_twins(c, 0.5)
    x = RNG.standard_normal((n, c, h, w)) * 2 + 1
    nx, tx = _n(x), _t(x)
    _check_batchnorm2d_against_torch((nx, tx), (layer(nx), t_layer(tx)), (layer, t_layer))
    # as BatchNorm1d (and the course): running_var tracks the biased batch variance, PyTorch the
    # unbiased one
    count = n * h * w
    np.testing.assert_allclose(layer.running_var.numpy(), 0.9 + 0.1 * x.transpose(1, 0, 2, 3)
                               .reshape(c, -1).var(axis=1), rtol=1e-12)
    with torch.no_grad():
        t_layer.running_var.copy_(torch.tensor(layer.running_var.numpy()))
    layer.eval(), t_layer.eval()
    x2 = RNG.standard_normal((2, c, h, w))
    _close(layer(_n(x2)), t_layer(torch.tensor(x2)))
    assert count > 1


def test_second_order_gradients_through_conv_and_pooling_match_torch():
    a, b = RNG.standard_normal((2, 7, 6, 2)), RNG.standard_normal((3, 3, 2, 3))
    na, nb, ta, tb = _n(a), _n(b), _t(a), _t(b)
    loss = ndl.avg_pool2d(ndl.transpose(ndl.conv(na, nb, 2, 1) ** 2, (1, 3)), 2).sum()
    loss.backward(create_graph=True)
    grad_a, grad_b = na.grad, nb.grad
    ((grad_a * grad_a).sum() + (grad_b * grad_b * grad_b).sum()).backward()
    t_out = F.conv2d(ta.permute(0, 3, 1, 2), tb.permute(3, 2, 0, 1), stride=2, padding=1) ** 2
    t_loss = F.avg_pool2d(t_out.transpose(2, 3), 2).sum()  # (N, C, Wo, Ho) as the needle transpose
    t_ga, t_gb = torch.autograd.grad(t_loss, (ta, tb), create_graph=True)
    ((t_ga * t_ga).sum() + (t_gb * t_gb * t_gb).sum()).backward()
    _close(grad_a, t_ga)
    _close(na.grad, ta.grad, tol=1e-9)
    _close(nb.grad, tb.grad, tol=1e-9)


@pytest.mark.parametrize("lowest_weight", [-1.5, 0.5], ids=["mixed-signs", "positive"])
@pytest.mark.parametrize("shape", [(3, 4, 6, 8), (8, 16, 32, 32)], ids=["small", "blocks"])
def test_sequential_batchnorm2d_relu_maxpool_fused_matches_torch(shape, lowest_weight):
    """Sequential(BatchNorm2d, ReLU, MaxPool2d(2)) in training runs as one fused op (small arrays
    and ones big enough for the block passes); forward, backward and running mean as PyTorch's.
    Some weights negative: the order flips, so the op normalises before pooling; all positive:
    it pools first and normalises the maxima."""
    layer, t_layer = _batchnorm2d_twins(shape[1], lowest_weight)
    model = nn.Sequential(layer, nn.ReLU(), nn.MaxPool2d(2))
    x = RNG.standard_normal(shape) * 2 + 1
    nx, tx = _n(x), _t(x)
    out = model(nx)
    assert any(isinstance(node.op, ndl.ops.BatchNormReLUMaxPool2)
               for node in ndl.autograd.find_topo_sort([out]))
    _check_batchnorm2d_against_torch((nx, tx), (out, F.max_pool2d(F.relu(t_layer(tx)), 2)),
                                     (layer, t_layer))
