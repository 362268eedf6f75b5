"""Training loop settings."""
from __future__ import annotations

from pydantic import Field

from .layers import _Spec

SEED_LIMIT = 2**32  # numpy's legacy seeding accepts [0, 2**32)


class StoppingSpec(_Spec):
    """Optional early stops, on top of the epoch count."""

    max_steps: int | None = Field(default=None, ge=1, le=10**12)
    max_runtime_s: float | None = Field(default=None, gt=0, le=10**9)


class TrainingSpec(_Spec):
    """Epochs, batching, shuffling and the seed that makes a run reproducible."""

    epochs: int = Field(default=1, ge=1, le=10**9)
    batch_size: int = Field(default=32, ge=1, le=10**9)
    shuffle: bool = True
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)
    stopping: StoppingSpec = Field(default_factory=StoppingSpec)
