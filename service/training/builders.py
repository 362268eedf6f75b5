"""Normalised spec dicts -> needle models and optimizers."""
from typing import Any

import numpy as np

from needle import nn, optim
from needle.lr_schedule import LRSchedule
from needle.models import MLPResNet

NORMS = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm1d}
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
               "gelu": nn.GELU, "silu": nn.SiLU}


def build_model(model_spec: dict[str, Any]) -> nn.Module:
    """The needle module a ModelSpec describes (draws its initial weights from np.random)."""
    if model_spec["type"] == "mlp_resnet":
        return MLPResNet(model_spec["in_features"], hidden_dim=model_spec.get("hidden_dim", 100),
                         num_blocks=model_spec.get("num_blocks", 3), num_classes=model_spec.get("num_classes", 10),
                         norm=NORMS[model_spec.get("norm", "batchnorm")], drop_prob=model_spec.get("drop_prob", 0.1),
                         activation=ACTIVATIONS[model_spec.get("activation", "relu")])
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
    if kind == "leaky_relu":
        return nn.LeakyReLU(layer.get("negative_slope", 0.01))
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
    simple = {**ACTIVATIONS, "flatten": nn.Flatten, "identity": nn.Identity}
    if kind in simple:
        return simple[kind]()
    raise ValueError(f"unknown layer type {kind!r}")


def build_optimizer(optimizer_spec: dict[str, Any], parameters: list) -> optim.Optimizer:
    """The needle optimizer an OptimizerSpec describes."""
    spec = dict(optimizer_spec)
    kind = spec.pop("type")
    spec.pop("schedule", None)  # the training loop sets optimizer.lr per step
    if kind == "sgd":
        return optim.SGD(parameters, **spec)
    if kind == "adam":
        return optim.Adam(parameters, **spec)
    if kind == "adamw":
        return optim.AdamW(parameters, **spec)
    raise ValueError(f"unknown optimizer type {kind!r}")


def state_shapes(model_spec: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """state_dict key -> shape of the model a spec builds (parameters and BatchNorm statistics);
    the caller's np.random stream is left untouched."""
    rng_state = np.random.get_state()
    try:
        return {key: tuple(value.shape) for key, value in build_model(model_spec).state_dict().items()}
    finally:
        np.random.set_state(rng_state)


def model_input(model_spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Rows (N, F) as the model takes them: (N, C, H, W) views for a model with an input_shape."""
    shape = model_spec.get("input_shape")
    return x if shape is None else x.reshape(len(x), *shape)


def parameter_count(model: nn.Module) -> int:
    """Trainable scalars of a built model."""
    return sum(int(p.numpy().size) for p in model.parameters())


def build_schedule(optimizer_spec: dict[str, Any], steps_per_epoch: int, total_steps: int) -> LRSchedule:
    """The per-step learning rate an optimizer spec's `schedule` describes."""
    schedule = optimizer_spec.get("schedule") or {"type": "constant"}
    return LRSchedule(optimizer_spec["lr"], schedule["type"], warmup_steps=schedule.get("warmup_steps", 0),
                      steps_per_epoch=steps_per_epoch, step_size=schedule.get("step_size", 1),
                      gamma=schedule.get("gamma", 0.1), total_steps=total_steps,
                      min_lr=schedule.get("min_lr", 0.0))


def build_loss(loss_spec: dict[str, Any] | None) -> nn.Module:
    """The loss module of a training.loss spec (cross-entropy by default)."""
    loss_spec = loss_spec or {"type": "cross_entropy"}
    kind = loss_spec["type"]
    if kind == "cross_entropy":
        return nn.CrossEntropyLoss(loss_spec.get("label_smoothing", 0.0))
    if kind == "mse":
        return nn.MSELoss()
    if kind == "l1":
        return nn.L1Loss()
    if kind == "huber":
        return nn.HuberLoss(loss_spec.get("delta", 1.0))
    raise ValueError(f"unknown loss type {kind!r}")
