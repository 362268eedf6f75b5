"""Normalised spec dicts -> needle models and optimizers."""
from typing import Any

import numpy as np

from needle import nn, optim
from needle.models import MLPResNet

NORMS = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm1d}


def build_model(model_spec: dict[str, Any]) -> nn.Module:
    """The needle module a ModelSpec describes (draws its initial weights from np.random)."""
    if model_spec["type"] == "mlp_resnet":
        return MLPResNet(model_spec["in_features"], hidden_dim=model_spec.get("hidden_dim", 100),
                         num_blocks=model_spec.get("num_blocks", 3), num_classes=model_spec.get("num_classes", 10),
                         norm=NORMS[model_spec.get("norm", "batchnorm")], drop_prob=model_spec.get("drop_prob", 0.1))
    if model_spec["type"] == "sequential":
        return _stack(model_spec["layers"])
    raise ValueError(f"unknown model type {model_spec['type']!r}")


def _stack(layers: list[dict]) -> nn.Sequential:
    return nn.Sequential(*[build_layer(layer) for layer in layers])


def build_layer(layer: dict[str, Any]) -> nn.Module:
    """One LayerSpec -> needle module."""
    kind = layer["type"]
    if kind == "linear":
        return nn.Linear(layer["in_features"], layer["out_features"], bias=layer.get("bias", True))
    if kind == "batchnorm1d":
        return nn.BatchNorm1d(layer["dim"], eps=layer.get("eps", 1e-5), momentum=layer.get("momentum", 0.1))
    if kind == "layernorm1d":
        return nn.LayerNorm1d(layer["dim"], eps=layer.get("eps", 1e-5))
    if kind == "dropout":
        return nn.Dropout(layer.get("p", 0.5))
    if kind == "conv2d":
        return nn.Conv(layer["in_channels"], layer["out_channels"], layer["kernel_size"],
                       stride=layer.get("stride", 1), bias=layer.get("bias", True))
    if kind == "batchnorm2d":
        return nn.BatchNorm2d(layer["dim"], eps=layer.get("eps", 1e-5), momentum=layer.get("momentum", 0.1))
    if kind in ("maxpool2d", "avgpool2d"):
        pool = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
        return pool(layer["kernel_size"], layer.get("stride"))
    if kind == "residual":
        return nn.Residual(_stack(layer["layers"]))
    if kind == "sequential":
        return _stack(layer["layers"])
    simple = {"relu": nn.ReLU, "flatten": nn.Flatten, "identity": nn.Identity}
    if kind in simple:
        return simple[kind]()
    raise ValueError(f"unknown layer type {kind!r}")


def build_optimizer(optimizer_spec: dict[str, Any], parameters: list) -> optim.Optimizer:
    """The needle optimizer an OptimizerSpec describes."""
    spec = dict(optimizer_spec)
    kind = spec.pop("type")
    if kind == "sgd":
        return optim.SGD(parameters, **spec)
    if kind == "adam":
        return optim.Adam(parameters, **spec)
    raise ValueError(f"unknown optimizer type {kind!r}")


def model_input(model_spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Rows (N, F) as the model takes them: (N, C, H, W) views for a model with an input_shape."""
    shape = model_spec.get("input_shape")
    return x if shape is None else x.reshape(len(x), *shape)


def parameter_count(model: nn.Module) -> int:
    """Trainable scalars of a built model."""
    return sum(int(p.numpy().size) for p in model.parameters())
