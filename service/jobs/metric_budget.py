"""A bounded number of step metric points per job: beyond the budget, consecutive steps of an
epoch are merged into one point (the step of the last one, the mean of each value)."""
import math


def steps_per_point(planned_steps: int, max_points: int) -> int:
    """1 (every step kept exactly) while the job plans at most max_points steps."""
    if max_points <= 0 or planned_steps <= max_points:
        return 1
    return math.ceil(planned_steps / max_points)


class StepAggregator:
    """Feed every step's values; get back the points to store. A group never spans two epochs,
    so a job resumed from an epoch-end checkpoint records the same points as an uninterrupted
    run; `flush()` closes a partial group (job end, hand-over)."""

    def __init__(self, every: int):
        self.every = max(1, every)
        self._epoch: int | None = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._last_step = 0

    def add(self, epoch: int, step: int, values: dict) -> list[tuple[str, int, int, dict]]:
        """The points completed by this step (none, one, or two at an epoch change)."""
        if self.every == 1:
            return [("step", epoch, step, values)]
        out = self.flush() if self._epoch is not None and epoch != self._epoch else []
        self._epoch, self._last_step = epoch, step
        for key, value in values.items():
            if isinstance(value, (int, float)):
                self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        if self._count >= self.every:
            out += self.flush()
        return out

    def flush(self) -> list[tuple[str, int, int, dict]]:
        """The partial group as one point (or nothing)."""
        if self._count == 0:
            return []
        point = ("step", self._epoch, self._last_step,
                 {key: total / self._count for key, total in self._sums.items()})
        self._sums, self._count = {}, 0
        return [point]
