"""needle.models: MLPResNet structure, parameter creation order, and a PyTorch cross-check."""
import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.models import MLPResNet, ResidualBlock


def course_kaiming_uniform(fan_in, fan_out):
    bound = np.sqrt(2.0) * np.sqrt(3.0 / fan_in)
    return np.random.rand(fan_in, fan_out) * 2 * bound - bound


def test_residual_block_structure():
    block = ResidualBlock(8, 4, norm=nn.LayerNorm1d, drop_prob=0.2)
    residual, relu = block.modules
    assert isinstance(block, nn.Sequential) and isinstance(residual, nn.Residual) and isinstance(relu, nn.ReLU)
    types = [type(m) for m in residual.fn.modules]
    assert types == [nn.Linear, nn.LayerNorm1d, nn.ReLU, nn.Dropout, nn.Linear, nn.LayerNorm1d]
    first, _, _, drop, last, norm = residual.fn.modules
    assert first.weight.shape == (8, 4) and last.weight.shape == (4, 8) and norm.dim == 8 and drop.p == 0.2


def test_mlp_resnet_structure_and_creation_order():
    np.random.seed(3)
    expected = [course_kaiming_uniform(10, 8), course_kaiming_uniform(8, 1).reshape(1, 8)]
    for _ in range(2):
        expected += [course_kaiming_uniform(8, 4), course_kaiming_uniform(4, 1).reshape(1, 4),
                     course_kaiming_uniform(4, 8), course_kaiming_uniform(8, 1).reshape(1, 8)]
    expected += [course_kaiming_uniform(8, 3), course_kaiming_uniform(3, 1).reshape(1, 3)]
    np.random.seed(3)
    model = MLPResNet(10, hidden_dim=8, num_blocks=2, num_classes=3)
    types = [type(m) for m in model.modules]
    assert types == [nn.Linear, nn.ReLU, nn.Sequential, nn.Sequential, nn.Linear]
    linear_params = [p for name, p in model.named_parameters() if name.endswith(("0.weight", "0.bias",
                                                                                  "4.weight", "4.bias"))]
    assert len(linear_params) == len(expected)
    for param, want in zip(linear_params, expected):
        np.testing.assert_allclose(param.numpy(), want, rtol=1e-6)
    # Linear layers plus BatchNorm weight/bias (4 + 8 features per block).
    assert sum(p.numpy().size for p in model.parameters()) == (10 * 8 + 8) + 2 * (
        8 * 4 + 4 + 2 * 4 + 4 * 8 + 8 + 2 * 8) + (8 * 3 + 3)


def to_torch_layout(key, value):
    """needle stores Linear weight as (in, out) and bias as (1, out); PyTorch as (out, in) and (out,)."""
    if value.ndim == 2 and key.endswith("weight"):
        return value.T.copy()
    return value.reshape(-1).copy()


def test_mlp_resnet_matches_torch_logits_and_gradients():
    torch = pytest.importorskip("torch")
    from service.client.torch_twin import mlp_resnet
    np.random.seed(0)
    model = MLPResNet(12, hidden_dim=10, num_blocks=2, num_classes=4, drop_prob=0.0)
    reference = mlp_resnet(12, 10, 2, 4, drop_prob=0.0).double()
    state = model.state_dict()
    reference.load_state_dict({k: torch.from_numpy(to_torch_layout(k, v).astype(np.float64))
                               for k, v in state.items()}, strict=False)
    x = np.random.randn(16, 12).astype(np.float32)
    y = np.random.randint(0, 4, size=16).astype(np.uint8)

    model.train()
    loss = nn.SoftmaxLoss()(model(ndl.Tensor(x)), ndl.Tensor(y, requires_grad=False))
    loss.backward()
    reference.train()
    t_logits = reference(torch.from_numpy(x.astype(np.float64)))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y.astype(np.int64)))
    t_loss.backward()
    np.testing.assert_allclose(loss.numpy(), t_loss.item(), rtol=1e-5)
    torch_params = dict(reference.named_parameters())
    for name, param in model.named_parameters():
        want = torch_params[name].grad.numpy()
        np.testing.assert_allclose(to_torch_layout(name, param.grad.numpy()), want, rtol=1e-3, atol=1e-5,
                                   err_msg=name)

    # Running means agree; eval logits agree once torch's (unbiased) running_var is replaced by ours.
    torch_state = reference.state_dict()
    for key, value in model.state_dict().items():
        if key.endswith("running_mean"):
            np.testing.assert_allclose(value, torch_state[key].numpy(), rtol=1e-5, atol=1e-6)
    reference.load_state_dict({k: torch.from_numpy(to_torch_layout(k, v).astype(np.float64))
                               for k, v in model.state_dict().items()}, strict=False)
    model.eval()
    reference.eval()
    logits = model(ndl.Tensor(x, requires_grad=False)).numpy()
    with torch.no_grad():
        np.testing.assert_allclose(logits, reference(torch.from_numpy(x.astype(np.float64))).numpy(),
                                   rtol=1e-4, atol=1e-5)
