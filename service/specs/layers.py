"""Layer specs of a sequential model (pure data, discriminated on "type")."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    """Base for every spec: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class LinearLayer(_Spec):
    """Fully connected layer: (N, in_features) -> (N, out_features)."""

    type: Literal["linear"]
    in_features: int = Field(gt=0)
    out_features: int = Field(gt=0)
    bias: bool = True


class ReLULayer(_Spec):
    """Elementwise max(x, 0)."""

    type: Literal["relu"]


class LeakyReLULayer(_Spec):
    """Elementwise x if x > 0 else negative_slope * x."""

    type: Literal["leaky_relu"]
    negative_slope: float = Field(default=0.01, ge=0, le=1)


class TanhLayer(_Spec):
    """Elementwise tanh."""

    type: Literal["tanh"]


class SigmoidLayer(_Spec):
    """Elementwise logistic sigmoid."""

    type: Literal["sigmoid"]


class GELULayer(_Spec):
    """GELU, tanh approximation (PyTorch's nn.GELU(approximate="tanh"))."""

    type: Literal["gelu"]


class SiLULayer(_Spec):
    """Elementwise x * sigmoid(x)."""

    type: Literal["silu"]


ACTIVATION_TYPES = ("relu", "leaky_relu", "tanh", "sigmoid", "gelu", "silu")


class FlattenLayer(_Spec):
    """Flatten all but the batch dimension: (N, C, H, W) -> (N, C*H*W); a no-op on (N, F)."""

    type: Literal["flatten"]


class IdentityLayer(_Spec):
    """Pass-through."""

    type: Literal["identity"]


class BatchNorm1dLayer(_Spec):
    """Batch normalisation over the batch dimension, with running statistics for eval."""

    type: Literal["batchnorm1d"]
    dim: int = Field(gt=0)
    eps: float = Field(default=1e-5, gt=0)
    momentum: float = Field(default=0.1, ge=0, le=1)


class LayerNorm1dLayer(_Spec):
    """Layer normalisation over the feature dimension."""

    type: Literal["layernorm1d"]
    dim: int = Field(gt=0)
    eps: float = Field(default=1e-5, gt=0)


class DropoutLayer(_Spec):
    """Zero each activation with probability p while training."""

    type: Literal["dropout"]
    p: float = Field(default=0.5, ge=0, lt=1)


MAX_KERNEL = 64


class Conv2dLayer(_Spec):
    """2-D convolution of (N, C, H, W) with "same" padding kernel_size // 2 (needle nn.Conv):
    -> (N, out_channels, (H + 2 * (K // 2) - K) // stride + 1, likewise for W)."""

    type: Literal["conv2d"]
    in_channels: int = Field(gt=0)
    out_channels: int = Field(gt=0)
    kernel_size: int = Field(gt=0, le=MAX_KERNEL)
    stride: int = Field(default=1, gt=0, le=MAX_KERNEL)
    bias: bool = True


class BatchNorm2dLayer(_Spec):
    """Batch normalisation of each channel of (N, C, H, W) over N, H and W."""

    type: Literal["batchnorm2d"]
    dim: int = Field(gt=0, description="number of channels C")
    eps: float = Field(default=1e-5, gt=0)
    momentum: float = Field(default=0.1, ge=0, le=1)


class MaxPool2dLayer(_Spec):
    """Max over kernel_size x kernel_size windows (PyTorch semantics: no padding, floor)."""

    type: Literal["maxpool2d"]
    kernel_size: int = Field(gt=0, le=MAX_KERNEL)
    stride: int | None = Field(default=None, gt=0, le=MAX_KERNEL,
                               description="defaults to kernel_size")


class AvgPool2dLayer(_Spec):
    """Mean over kernel_size x kernel_size windows (PyTorch semantics: no padding, floor)."""

    type: Literal["avgpool2d"]
    kernel_size: int = Field(gt=0, le=MAX_KERNEL)
    stride: int | None = Field(default=None, gt=0, le=MAX_KERNEL,
                               description="defaults to kernel_size")


class ResidualLayer(_Spec):
    """x + Sequential(layers)(x); the inner stack must keep the width."""

    type: Literal["residual"]
    layers: list[LayerSpec] = Field(min_length=1)


class SequentialLayer(_Spec):
    """A nested stack of layers applied in order."""

    type: Literal["sequential"]
    layers: list[LayerSpec] = Field(min_length=1)


LayerSpec = Annotated[
    Union[LinearLayer, ReLULayer, LeakyReLULayer, TanhLayer, SigmoidLayer, GELULayer, SiLULayer,
          FlattenLayer, IdentityLayer, BatchNorm1dLayer, LayerNorm1dLayer, DropoutLayer,
          Conv2dLayer, BatchNorm2dLayer, MaxPool2dLayer, AvgPool2dLayer, ResidualLayer,
          SequentialLayer],
    Field(discriminator="type"),
]

ResidualLayer.model_rebuild()
SequentialLayer.model_rebuild()
