"""needle.nn: modules, parameters and state_dict (course API plus PyTorch-style state_dict)."""
from needle.nn.nn_basic import (
    BatchNorm1d, Dropout, Flatten, Identity, LayerNorm1d, Linear, Module, Parameter, ReLU, Residual,
    Sequential, SoftmaxLoss,
)

__all__ = [
    "BatchNorm1d", "Dropout", "Flatten", "Identity", "LayerNorm1d", "Linear", "Module", "Parameter",
    "ReLU", "Residual", "Sequential", "SoftmaxLoss",
]
