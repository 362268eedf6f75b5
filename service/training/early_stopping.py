"""Early stopping on an epoch metric (lower is better), keeping the best epoch's parameters."""
import math
from typing import Any

import numpy as np


class EarlyStopping:
    """Tracks the best value of `metric`; `update` says when `patience` epochs passed without an
    improvement of more than min_delta. Its state is checkpointed (header() + best_state)."""

    def __init__(self, metric: str, patience: int, min_delta: float, restore_best: bool):
        self.metric, self.patience, self.min_delta, self.restore_best = metric, patience, min_delta, restore_best
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, Any] = {}
        self.bad_epochs = 0
        self.best_state: dict[str, np.ndarray] | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> "EarlyStopping | None":
        """None when the job has no training.early_stopping."""
        if spec is None:
            return None
        return cls(spec.get("metric", "val_loss"), spec.get("patience", 5), spec.get("min_delta", 0.0),
                   spec.get("restore_best", True))

    def update(self, epoch: int, metrics: dict[str, Any], model) -> bool:
        """Record epoch's metrics (epoch counts from 1); True when training should stop."""
        value = metrics.get(self.metric)
        improved = value is not None and math.isfinite(value) and (
            self.best_metric is None or value < self.best_metric - self.min_delta)
        if improved:
            self.best_metric, self.best_epoch, self.bad_epochs = float(value), epoch, 0
            self.best_metrics = dict(metrics)
            if self.restore_best:
                self.best_state = model.state_dict()  # copies
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    @property
    def restores(self) -> bool:
        """True when the result is the best epoch's state rather than the last one's."""
        return self.restore_best and self.best_state is not None

    def summary(self) -> dict[str, Any]:
        """What the job result reports."""
        return {"best_epoch": self.best_epoch, "best_metric": self.best_metric}

    def header(self) -> dict[str, Any]:
        """JSON part of the checkpointed state (best_state travels as arrays)."""
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch,
                "best_metrics": self.best_metrics, "bad_epochs": self.bad_epochs}

    def restore(self, header: dict[str, Any] | None, best_state: dict[str, np.ndarray] | None) -> None:
        """Inverse of header() + best_state."""
        header = header or {}
        self.best_metric, self.best_epoch = header.get("best_metric"), header.get("best_epoch")
        self.best_metrics, self.bad_epochs = header.get("best_metrics") or {}, header.get("bad_epochs", 0)
        self.best_state = best_state
