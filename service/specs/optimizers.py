"""Optimizer specs (discriminated on "type"), each with a per-step learning-rate schedule."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .errors import spec_error
from .layers import _Spec

WARMUP = Field(default=0, ge=0, le=10_000_000,
               description="steps of linear warmup from lr / warmup_steps up to lr")


class ConstantSchedule(_Spec):
    """The optimizer's lr at every step (after the optional warmup)."""

    type: Literal["constant"] = "constant"
    warmup_steps: int = WARMUP


class StepSchedule(_Spec):
    """lr x gamma ** (epoch // step_size): decays every step_size epochs."""

    type: Literal["step"]
    step_size: int = Field(default=10, ge=1, description="epochs between decays")
    gamma: float = Field(default=0.1, gt=0, le=1)
    warmup_steps: int = WARMUP


class CosineSchedule(_Spec):
    """Cosine annealing from lr (after warmup) to min_lr at the run's last planned step."""

    type: Literal["cosine"]
    min_lr: float = Field(default=0.0, ge=0)
    warmup_steps: int = WARMUP


ScheduleSpec = Annotated[Union[ConstantSchedule, StepSchedule, CosineSchedule],
                         Field(discriminator="type")]


class _Optimizer(_Spec):
    """Fields every optimizer has: the learning-rate schedule and its cross-field check."""

    schedule: ScheduleSpec = Field(default_factory=ConstantSchedule,
                                   description="per-step learning-rate schedule; each step "
                                               "metric records the lr it used")

    @model_validator(mode="after")
    def _min_lr_below_lr(self):
        if isinstance(self.schedule, CosineSchedule) and self.schedule.min_lr > self.lr:
            raise spec_error(type(self).__name__, [(("schedule", "cosine", "min_lr"),
                             f"min_lr {self.schedule.min_lr} exceeds lr {self.lr}",
                             self.schedule.min_lr)])
        return self


class SGDOptimizer(_Optimizer):
    """needle.optim.SGD(params, lr, momentum, weight_decay)."""

    type: Literal["sgd"]
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = Field(default=0.0, ge=0)


class AdamOptimizer(_Optimizer):
    """needle.optim.Adam(params, lr, beta1, beta2, eps, weight_decay): L2 decay in the gradient."""

    type: Literal["adam"]
    lr: float = Field(default=0.001, gt=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.999, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)


class AdamWOptimizer(_Optimizer):
    """needle.optim.AdamW: Adam with decoupled weight decay, w <- w (1 - lr weight_decay)."""

    type: Literal["adamw"]
    lr: float = Field(default=0.001, gt=0)
    beta1: float = Field(default=0.9, ge=0, lt=1)
    beta2: float = Field(default=0.999, ge=0, lt=1)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.01, ge=0, lt=1)


OptimizerSpec = Annotated[Union[SGDOptimizer, AdamOptimizer, AdamWOptimizer],
                          Field(discriminator="type")]
