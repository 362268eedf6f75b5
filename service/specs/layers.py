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
    """Flatten all but the batch dimension (a no-op on (N, F) inputs)."""

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
          ResidualLayer, SequentialLayer],
    Field(discriminator="type"),
]

ResidualLayer.model_rebuild()
SequentialLayer.model_rebuild()
