"""Pure arithmetic shared by the API (at submission) and the workers (when training)."""
from __future__ import annotations

import math

from .layers import (BatchNorm1dLayer, BatchNorm2dLayer, Conv2dLayer, LayerNorm1dLayer,
                     LinearLayer, ResidualLayer, SequentialLayer)
from .models import MLPResNetModel
from .training import TrainingSpec


def validation_split_sizes(n_rows: int, fraction: float) -> tuple[int, int]:
    """(n_train, n_val) for a fractional hold-out: n_val = max(1, int(n_rows * fraction))."""
    n_val = max(1, int(n_rows * fraction))
    return n_rows - n_val, n_val


def planned_steps(n_train: int, training: TrainingSpec) -> tuple[int, int]:
    """(epochs, steps) the run will take: epochs x ceil(n_train / batch_size), capped by
    stopping.max_steps (epochs then counts the epochs those steps reach into)."""
    steps_per_epoch = math.ceil(max(n_train, 0) / training.batch_size)
    epochs = training.epochs
    steps = epochs * steps_per_epoch
    max_steps = training.stopping.max_steps
    if max_steps is not None and steps > max_steps:
        steps = max_steps
        epochs = math.ceil(max_steps / steps_per_epoch)
    return epochs, steps


def count_parameters(model) -> int:
    """Trainable scalars of the needle model the spec builds (running statistics excluded)."""
    if isinstance(model, MLPResNetModel):
        return _mlp_resnet_parameters(model)
    return _stack_parameters(model.layers)


def _mlp_resnet_parameters(model: MLPResNetModel) -> int:
    # Linear(in, h), ReLU, num_blocks x ResidualBlock(h, h // 2), Linear(h, classes)
    h, half = model.hidden_dim, model.hidden_dim // 2
    block = (h * half + half) + 2 * half + (half * h + h) + 2 * h  # linear, norm, linear, norm
    return (model.in_features * h + h) + model.num_blocks * block + (h * model.num_classes
                                                                     + model.num_classes)


def _stack_parameters(layers: list) -> int:
    total = 0
    for layer in layers:
        if isinstance(layer, LinearLayer):
            total += layer.in_features * layer.out_features + (layer.out_features if layer.bias
                                                               else 0)
        elif isinstance(layer, Conv2dLayer):
            total += layer.kernel_size ** 2 * layer.in_channels * layer.out_channels + (
                layer.out_channels if layer.bias else 0)
        elif isinstance(layer, (BatchNorm1dLayer, BatchNorm2dLayer, LayerNorm1dLayer)):
            total += 2 * layer.dim  # weight and bias
        elif isinstance(layer, (ResidualLayer, SequentialLayer)):
            total += _stack_parameters(layer.layers)
    return total
