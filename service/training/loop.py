"""A resumable, deterministic training run that yields after every optimizer step."""
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

import needle as ndl
from needle import nn
from service.specs import is_regression

from .builders import build_loss, build_model, build_optimizer, build_schedule, model_input
from .checkpoint import Checkpoint
from .data import TrainingData
from .early_stopping import EarlyStopping
from .errors import TrainingError
from .evaluation import EVAL_BATCH, evaluate_metrics, train_metrics


@dataclass(frozen=True)
class StepDone:
    """One optimizer step finished (step counts from 1)."""

    epoch: int      # 0-based epoch the step belongs to
    step: int
    loss: float
    lr: float       # learning rate the update used


@dataclass(frozen=True)
class EpochDone:
    """An epoch finished; `metrics` has train_loss/train_error/val_loss/val_error (regression:
    train_loss/train_rmse/val_loss/val_rmse/val_mae)."""

    epoch: int      # completed epochs so far (1-based count)
    step: int
    metrics: dict[str, float | None]


class TrainingRun:
    """Model + optimizer + position; `events()` trains, `snapshot()`/`restore()` checkpoint it."""

    def __init__(self, spec: dict[str, Any], data: TrainingData, eval_rows: int = EVAL_BATCH):
        training = spec["training"]
        self.data = data
        self.eval_rows = eval_rows  # rows per validation forward pass (see prepare_run)
        self.epochs = training["epochs"]
        self.batch_size = training["batch_size"]
        self.shuffle = training["shuffle"]
        stopping = training.get("stopping") or {}
        self.max_steps = stopping.get("max_steps")
        self.max_runtime_s = stopping.get("max_runtime_s")
        # The model's init and every later draw follow the seed. Building leaves the caller's
        # np.random untouched; events() installs this run's stream into np.random (not swapped
        # per step, which would cost ~0.1 ms), so only one run may train at a time per process.
        outer = np.random.get_state()
        np.random.seed(training["seed"])
        self.model_spec = spec["model"]
        self.model = build_model(self.model_spec)
        self.rng_state = np.random.get_state()
        np.random.set_state(outer)
        self.rng_live = False  # True once events() installed rng_state into np.random
        self.optimizer = build_optimizer(spec["optimizer"], self.model.parameters())
        self.loss_fn = build_loss(training.get("loss"))
        self.regression = is_regression(training.get("loss"))
        self.schedule = build_schedule(spec["optimizer"], self.steps_per_epoch, self.planned()[1])
        self.clip_grad_norm = training.get("clip_grad_norm")
        self.early = EarlyStopping.from_spec(training.get("early_stopping"))
        self.epoch, self.batch, self.step = 0, 0, 0
        self.order: np.ndarray | None = None
        self.acc = _fresh_accumulators()
        self.runtime_before = 0.0        # seconds trained by earlier attempts
        self.started = time.monotonic()
        self.last_epoch_metrics: dict[str, Any] | None = None
        self.stopped: str | None = None  # "max_steps" | "max_runtime_s" | "early_stopping"

    # ---- planning ----
    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.y_train) / self.batch_size)

    def planned(self) -> tuple[int, int]:
        """(epochs, steps) this run will take, max_steps included."""
        steps = self.epochs * self.steps_per_epoch
        if self.max_steps is not None and self.max_steps < steps:
            return math.ceil(self.max_steps / self.steps_per_epoch), self.max_steps
        return self.epochs, steps

    def finished(self) -> bool:
        """True once no further step will run (all epochs done, or a stop fired)."""
        return self.epoch >= self.epochs or self.stopped is not None or (
            self.max_steps is not None and self.step >= self.max_steps)

    @property
    def task(self) -> str:
        """"regression" or "classification" (what /predict and /evaluate report)."""
        return "regression" if self.regression else "classification"

    def runtime_s(self) -> float:
        return self.runtime_before + (time.monotonic() - self.started)

    # ---- training ----
    def events(self) -> Iterator[StepDone | EpochDone]:
        """Train to the end (or a stopping limit), yielding after each step and each epoch."""
        self.model.train()
        np.random.set_state(self.rng_state)
        self.rng_live = True
        while self.epoch < self.epochs:
            if self._limit_reached():
                return
            if self.order is None:  # a new epoch draws its order from the global generator
                n = len(self.data.y_train)
                self.order = np.random.permutation(n) if self.shuffle else np.arange(n)
            while self.batch < self.steps_per_epoch:
                if self._limit_reached():
                    return
                with np.errstate(over="ignore", invalid="ignore"):  # divergence -> TrainingError
                    event = self._train_batch()
                yield event
            yield self._end_epoch()

    def _limit_reached(self) -> bool:
        if self.max_steps is not None and self.step >= self.max_steps:
            self.stopped = "max_steps"
        elif self.max_runtime_s is not None and self.runtime_s() >= self.max_runtime_s:
            self.stopped = "max_runtime_s"
        return self.stopped is not None

    def _train_batch(self) -> StepDone:
        rows = self.order[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
        x = ndl.Tensor(model_input(self.model_spec, self.data.x_train[rows]), dtype="float32",
                       requires_grad=False)  # (B, F) or (B, C, H, W)
        targets = self.data.y_train[rows]  # (B,) labels or (B, K) regression targets
        y = ndl.Tensor(targets, dtype="float32" if self.regression else "int64", requires_grad=False)
        self.optimizer.reset_grad()
        outputs = self.model(x)  # (B, classes) or (B, K)
        loss = self.loss_fn(outputs, y)
        loss.backward()
        loss_value = float(loss.numpy())
        if not math.isfinite(loss_value):
            raise TrainingError(f"loss became {'nan' if math.isnan(loss_value) else 'inf'} at step {self.step + 1}")
        if self.clip_grad_norm is not None:
            nn.clip_grad_norm(self.optimizer.params, self.clip_grad_norm)
        lr = self.schedule.lr_at(self.step)
        self.optimizer.lr = lr
        self.optimizer.step()
        self.batch += 1
        self.step += 1
        self.acc["loss_sum"] += loss_value * len(targets)  # loss is a batch mean: weight by rows
        predictions = outputs.numpy()
        if self.regression:
            self.acc["sq_sum"] += float(np.sum((predictions.astype(np.float64) - targets) ** 2))
        else:
            self.acc["errors"] += int(np.sum(predictions.argmax(axis=1) != targets))
        self.acc["seen"] += len(targets)
        return StepDone(epoch=self.epoch, step=self.step, loss=loss_value, lr=lr)

    def _end_epoch(self) -> EpochDone:
        metrics = {**self._train_metrics(), **self.validate()}
        self.epoch += 1
        self.batch, self.order, self.acc = 0, None, _fresh_accumulators()
        self.last_epoch_metrics = metrics
        if self.early is not None and self.early.update(self.epoch, metrics, self.model):
            self.stopped = "early_stopping"
        return EpochDone(epoch=self.epoch, step=self.step, metrics=metrics)

    def _train_metrics(self) -> dict[str, float | None]:
        width = self.data.y_train.shape[1] if self.regression else 1
        return train_metrics(self.acc, self.regression, width)

    def validate(self) -> dict[str, float | None]:
        """Validation metrics in eval mode (None values without validation data)."""
        if self.data.x_val is None:
            names = ("val_loss", "val_rmse", "val_mae") if self.regression else ("val_loss", "val_error")
            return dict.fromkeys(names)
        metrics = evaluate_metrics(self.model, model_input(self.model_spec, self.data.x_val), self.data.y_val,
                                   self.loss_fn, self.regression, self.eval_rows)
        self.model.train()
        names = {"loss": "val_loss", "error": "val_error", "rmse": "val_rmse", "mae": "val_mae"}
        return {names[k]: metrics[k] for k in names if k in metrics}

    # ---- results ----
    def result(self) -> dict[str, Any]:
        """Final metrics at the point reached (a partial epoch reports its own train metrics)."""
        if self.acc["seen"] > 0 or self.last_epoch_metrics is None:
            metrics = {**self._train_metrics(), **self.validate()}
        else:
            metrics = dict(self.last_epoch_metrics)
        if self.early is not None and self.early.restores:
            metrics = dict(self.early.best_metrics)  # the stored parameters are the best epoch's
        out = {**metrics, "epochs": self.epoch, "steps": self.step, "runtime_s": self.runtime_s()}
        if self.early is not None:
            out.update(self.early.summary())
        if self.stopped:
            out["stopped"] = self.stopped
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """The trained state to store (needle layout): the best epoch's with restore_best."""
        if self.early is not None and self.early.restores:
            return dict(self.early.best_state)
        return self.model.state_dict()

    def warm_start(self, state: dict[str, np.ndarray]) -> None:
        """Start from another run's trained state (same architecture: ValueError otherwise)."""
        try:
            self.model.load_state_dict(state)
        except (KeyError, ValueError) as exc:
            raise TrainingError(f"training.init_from: the parameters do not fit this model: {exc}") from None

    # ---- checkpoints ----
    def snapshot(self) -> Checkpoint:
        """Everything needed to continue exactly from here."""
        return Checkpoint(model_state=self.model.state_dict(), optimizer_state=self.optimizer.state_dict(),
                          rng_state=np.random.get_state() if self.rng_live else self.rng_state, epoch=self.epoch, batch=self.batch, step=self.step,
                          order=None if self.order is None else self.order.copy(), accumulators=dict(self.acc),
                          runtime_s=self.runtime_s(), last_epoch_metrics=self.last_epoch_metrics,
                          extra={"stopped": self.stopped,
                                 "early_stopping": None if self.early is None else self.early.header()},
                          best_state=None if self.early is None else self.early.best_state)

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a snapshot of the same spec."""
        self.model.load_state_dict(ckpt.model_state)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.rng_state, self.rng_live = ckpt.rng_state, False
        self.epoch, self.batch, self.step = ckpt.epoch, ckpt.batch, ckpt.step
        self.order = None if ckpt.order is None else np.asarray(ckpt.order, dtype=np.int64)
        fresh = _fresh_accumulators()
        self.acc = {key: type(fresh[key])(ckpt.accumulators.get(key, fresh[key])) for key in fresh}
        self.runtime_before, self.started = ckpt.runtime_s, time.monotonic()
        self.last_epoch_metrics = ckpt.last_epoch_metrics
        self.stopped = ckpt.extra.get("stopped")
        if self.early is not None:
            self.early.restore(ckpt.extra.get("early_stopping"), ckpt.best_state)


def _fresh_accumulators() -> dict[str, float | int]:
    return {"loss_sum": 0.0, "errors": 0, "seen": 0, "sq_sum": 0.0}


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of a classifier on (x, y) in eval mode; x (N, ...) as the
    model takes it (see builders.model_input)."""
    metrics = evaluate_metrics(model, x, y, nn.SoftmaxLoss(), regression=False)
    return metrics["loss"], metrics["error"]
