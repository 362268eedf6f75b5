"""Learning-rate schedules as pure functions of the optimizer step, so a resumed run continues
exactly: set `optimizer.lr = schedule.lr_at(step)` before each step.

`step` counts completed optimizer steps (0 for the first update). Warmup (optional) ramps the rate
linearly, lr * (step + 1) / warmup_steps, for the first warmup_steps steps; the schedule proper then
runs on the steps after the warmup.
"""
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LRSchedule:
    """kind: "constant" | "step" (x gamma every step_size epochs) | "cosine" (to min_lr at the
    last of total_steps)."""

    base_lr: float
    kind: str = "constant"
    warmup_steps: int = 0
    steps_per_epoch: int = 1      # step schedule: epochs are counted in optimizer steps
    step_size: int = 1            # step schedule: epochs between decays
    gamma: float = 0.1
    total_steps: int = 1          # cosine: the run's planned steps (warmup included)
    min_lr: float = 0.0

    def __post_init__(self):
        if self.kind not in ("constant", "step", "cosine"):
            raise ValueError(f"unknown schedule {self.kind!r}")

    def lr_at(self, step: int) -> float:
        """The rate of update number step + 1."""
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "step":
            epoch = step // max(self.steps_per_epoch, 1)
            return self.base_lr * self.gamma ** (epoch // self.step_size)
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = min((step - self.warmup_steps) / span, 1.0)
            return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.base_lr
