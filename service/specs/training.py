"""Training loop settings: epochs and batching, the loss, early stopping, clipping, warm start."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from .layers import _Spec

SEED_LIMIT = 2**32  # numpy's legacy seeding accepts [0, 2**32)
VALIDATION_METRICS = ("val_loss", "val_error", "val_rmse", "val_mae")
REGRESSION_ONLY_METRICS = ("val_rmse", "val_mae")
CLASSIFICATION_ONLY_METRICS = ("val_error",)


class StoppingSpec(_Spec):
    """Optional early stops, on top of the epoch count."""

    max_steps: int | None = Field(default=None, ge=1, le=10**12)
    max_runtime_s: float | None = Field(default=None, gt=0, le=10**9)


class CrossEntropyLoss(_Spec):
    """Classification: softmax cross-entropy against integer labels, optionally label-smoothed."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: float = Field(default=0.0, ge=0, le=1)


class MSELoss(_Spec):
    """Regression: mean squared error."""

    type: Literal["mse"]


class L1Loss(_Spec):
    """Regression: mean absolute error."""

    type: Literal["l1"]


class HuberLoss(_Spec):
    """Regression: quadratic for |error| < delta, linear beyond."""

    type: Literal["huber"]
    delta: float = Field(default=1.0, gt=0)


LossSpec = Annotated[Union[CrossEntropyLoss, MSELoss, L1Loss, HuberLoss], Field(discriminator="type")]


def is_regression(loss: CrossEntropyLoss | MSELoss | L1Loss | HuberLoss | dict | None) -> bool:
    """True for the regression losses (float targets, `outputs` from /predict). `loss`: a loss
    spec, or a stored spec's training "loss" (a dict, or None for the default cross-entropy)."""
    if loss is None:
        return False
    return (loss["type"] if isinstance(loss, dict) else loss.type) != "cross_entropy"


class EarlyStoppingSpec(_Spec):
    """Stop when `metric` (lower is better) has not improved by more than min_delta for
    `patience` epochs; restore_best keeps the best epoch's parameters as the job's result."""

    metric: Literal["val_loss", "val_error", "train_loss", "val_rmse", "val_mae"] = "val_loss"
    patience: int = Field(default=5, ge=1, le=100_000, description="epochs without improvement")
    min_delta: float = Field(default=0.0, ge=0, description="smallest decrease that counts")
    restore_best: bool = True


class InitFromJob(_Spec):
    """Start from the parameters (and BatchNorm statistics) of a succeeded job with the same
    architecture."""

    job: str = Field(min_length=1, max_length=200)


class TrainingSpec(_Spec):
    """Epochs, batching, shuffling and the seed that makes a run reproducible."""

    epochs: int = Field(default=1, ge=1, le=10**9)
    batch_size: int = Field(default=32, ge=1, le=10**9)
    shuffle: bool = True
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)
    stopping: StoppingSpec = Field(default_factory=StoppingSpec)
    loss: LossSpec = Field(default_factory=CrossEntropyLoss)
    early_stopping: EarlyStoppingSpec | None = None
    clip_grad_norm: float | None = Field(default=None, gt=0, description="clip gradients to "
                                         "this global L2 norm before each update")
    init_from: InitFromJob | None = None
    checkpoint_interval_s: float | None = Field(default=None, gt=0, le=86_400, description=
                                                "seconds of training between checkpoints "
                                                "(default: the server's)")
