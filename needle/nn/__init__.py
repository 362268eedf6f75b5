"""needle.nn: modules, parameters and state_dict (course API plus PyTorch-style state_dict).

state_dict keys are dotted attribute paths (list/tuple/dict items add their index/key), except that
a Sequential's children are keyed by bare index, as in PyTorch: an MLPResNet has `0.weight`,
`2.0.fn.1.running_mean`, ..., `5.bias`. Details in `needle.nn.state`.
"""
from needle.nn.nn_basic import (
    BatchNorm1d, Dropout, Flatten, Identity, LayerNorm1d, Linear, Module, Parameter, ReLU, Residual,
    Sequential, SoftmaxLoss,
)
from needle.nn.nn_activation import GELU, LeakyReLU, Sigmoid, SiLU, Tanh
from needle.nn.nn_loss import CrossEntropyLoss, HuberLoss, L1Loss, MSELoss
from needle.nn.clip import clip_grad_norm
from needle.nn.nn_conv import AvgPool2d, BatchNorm2d, Conv, MaxPool2d

__all__ = [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv", "MaxPool2d", "Dropout", "Flatten", "Identity", "LayerNorm1d", "Linear", "Module", "Parameter",
    "ReLU", "Residual", "Sequential", "SoftmaxLoss",
    "GELU", "LeakyReLU", "Sigmoid", "SiLU", "Tanh",
    "CrossEntropyLoss", "HuberLoss", "L1Loss", "MSELoss", "clip_grad_norm",
]
