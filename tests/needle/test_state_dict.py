"""Module.state_dict / load_state_dict: PyTorch-style keys, copies, buffers, dtype, strict errors."""
import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.models import MLPResNet
from needle.nn.state import named_tensors


def small_resnet(seed):
    np.random.seed(seed)
    return MLPResNet(6, hidden_dim=8, num_blocks=2, num_classes=3)


def block_keys(i):
    fn = f"{i}.0.fn"
    return [f"{fn}.0.weight", f"{fn}.0.bias",
            f"{fn}.1.weight", f"{fn}.1.bias", f"{fn}.1.running_mean", f"{fn}.1.running_var",
            f"{fn}.4.weight", f"{fn}.4.bias",
            f"{fn}.5.weight", f"{fn}.5.bias", f"{fn}.5.running_mean", f"{fn}.5.running_var"]


def test_mlp_resnet_keys_and_layout():
    state = small_resnet(0).state_dict()
    assert list(state) == ["0.weight", "0.bias", *block_keys(2), *block_keys(3), "4.weight", "4.bias"]
    assert state["0.weight"].shape == (6, 8) and state["0.bias"].shape == (1, 8)
    assert state["2.0.fn.1.weight"].shape == (4,) and state["2.0.fn.1.running_var"].shape == (4,)
    assert state["4.weight"].shape == (8, 3)
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in state.values())


def forward_eval(model, x):
    model.eval()
    return model(ndl.Tensor(x, requires_grad=False)).numpy().copy()


def test_round_trip_reproduces_outputs_including_running_stats():
    source = small_resnet(0)
    source.train()
    source(ndl.Tensor(np.random.randn(16, 6).astype(np.float32)))  # moves the running statistics
    state = source.state_dict()
    assert not np.allclose(state["2.0.fn.1.running_mean"], 0)
    target = small_resnet(1)
    x = np.random.randn(5, 6).astype(np.float32)
    assert not np.allclose(forward_eval(target, x), forward_eval(source, x))
    target.load_state_dict({k: v.astype(np.float64) for k, v in state.items()})
    np.testing.assert_array_equal(forward_eval(target, x), forward_eval(source, x))
    for key, tensor in named_tensors(target):
        assert tensor.dtype == np.float32 and tensor.is_leaf() and not tensor.inputs, key
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in target.parameters())


def test_state_dict_values_are_copies():
    model = small_resnet(0)
    state = model.state_dict()
    state["0.weight"][...] = 0.0
    assert not np.allclose(model.state_dict()["0.weight"], 0.0)
    loaded = small_resnet(1).state_dict()
    model.load_state_dict(loaded)
    loaded["0.weight"][...] = 7.0
    assert not np.any(model.state_dict()["0.weight"] == 7.0)


def test_strict_errors_name_the_keys_and_leave_the_model_unchanged():
    model = small_resnet(0)
    before = model.state_dict()
    state = small_resnet(1).state_dict()
    missing = dict(state)
    del missing["2.0.fn.1.running_var"]
    with pytest.raises(KeyError, match="2.0.fn.1.running_var"):
        model.load_state_dict(missing)
    with pytest.raises(KeyError, match="extra.weight"):
        model.load_state_dict({**state, "extra.weight": np.zeros(1)})
    wrong_shape = {**state, "0.weight": np.zeros((8, 6), dtype=np.float32)}
    with pytest.raises(ValueError, match="0.weight"):
        model.load_state_dict(wrong_shape)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    model.load_state_dict(missing, strict=False)
    np.testing.assert_array_equal(model.state_dict()["2.0.fn.1.running_var"], before["2.0.fn.1.running_var"])
    np.testing.assert_array_equal(model.state_dict()["0.weight"], state["0.weight"])


def test_keys_follow_attribute_paths_outside_sequential():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Residual(nn.LayerNorm1d(3))
            self.heads = {"cls": nn.Linear(3, 2)}

    assert list(Net().state_dict()) == ["body.fn.weight", "body.fn.bias", "heads.cls.weight", "heads.cls.bias"]


def test_keys_match_an_equivalent_torch_module():
    pytest.importorskip("torch")
    from service.client.torch_twin import mlp_resnet
    ours = set(small_resnet(0).state_dict())
    theirs = {k for k in mlp_resnet(6, 8, 2, 3).state_dict() if not k.endswith("num_batches_tracked")}
    assert ours == theirs
