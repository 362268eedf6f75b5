"""Spec -> needle model/optimizer: parameter counts agree with the spec arithmetic."""
import pytest

from needle import optim
from service.specs import JobSpec, count_parameters
from service.training import build_model, build_optimizer, parameter_count

DATA = {"type": "spirals", "n_samples": 10}
MODELS = [
    {"type": "mlp_resnet", "in_features": 2, "num_classes": 3},
    {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 9, "num_blocks": 0, "num_classes": 3, "norm": "layernorm"},
    {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 2, "num_classes": 5, "drop_prob": 0.0},
    {"type": "sequential", "layers": [
        {"type": "flatten"}, {"type": "linear", "in_features": 2, "out_features": 8},
        {"type": "batchnorm1d", "dim": 8}, {"type": "relu"},
        {"type": "residual", "layers": [{"type": "linear", "in_features": 8, "out_features": 8, "bias": False},
                                        {"type": "layernorm1d", "dim": 8}, {"type": "dropout", "p": 0.2}]},
        {"type": "sequential", "layers": [{"type": "identity"}, {"type": "linear", "in_features": 8,
                                                                 "out_features": 3}]}]},
]


def normalised(model: dict) -> JobSpec:
    return JobSpec.model_validate({"model": model, "data": DATA})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m["type"] + str(len(str(m))))
def test_built_model_has_the_spec_parameter_count(model):
    job = normalised(model)
    built = build_model(job.model_dump(mode="json")["model"])
    assert parameter_count(built) == count_parameters(job.model) > 0
    assert sum(v.size for k, v in built.state_dict().items() if "running" not in k) == parameter_count(built)


def test_sequential_keys_follow_the_torch_scheme():
    built = build_model(normalised(MODELS[3]).model_dump(mode="json")["model"])
    keys = list(built.state_dict())
    assert keys[:4] == ["1.weight", "1.bias", "2.weight", "2.bias"]
    assert "4.fn.0.weight" in keys and "4.fn.0.bias" not in keys and "5.1.weight" in keys


@pytest.mark.parametrize("spec,cls", [({"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}, optim.SGD),
                                      ({"type": "adam", "lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-8,
                                        "weight_decay": 0.1}, optim.Adam)])
def test_optimizer_from_spec(spec, cls):
    model = build_model(MODELS[1])
    opt = build_optimizer(spec, model.parameters())
    assert isinstance(opt, cls) and opt.lr == spec["lr"] and opt.weight_decay == spec["weight_decay"]
    assert len(opt.params) == len(model.parameters())
