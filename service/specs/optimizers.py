"""Optimizer specs (discriminated on "type")."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .layers import _Spec


class SGDOptimizer(_Spec):
    """needle.optim.SGD(params, lr, momentum, weight_decay)."""

    type: Literal["sgd"]
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)


class AdamOptimizer(_Spec):
    """needle.optim.Adam(params, lr, beta1, beta2, eps, weight_decay)."""

    type: Literal["adam"]
    lr: float = Field(default=0.001, gt=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.999, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)


OptimizerSpec = Annotated[Union[SGDOptimizer, AdamOptimizer], Field(discriminator="type")]
