"""A resumable, deterministic training run that yields after every optimizer step."""
import math
import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

import needle as ndl
from needle import nn

from .builders import build_model, build_optimizer, model_input
from .checkpoint import Checkpoint
from .data import TrainingData
from .errors import TrainingError

EVAL_BATCH = 1024  # rows per forward pass when evaluating (eval mode: rows are independent)


@dataclass(frozen=True)
class StepDone:
    """One optimizer step finished (step counts from 1)."""

    epoch: int      # 0-based epoch the step belongs to
    step: int
    loss: float


@dataclass(frozen=True)
class EpochDone:
    """An epoch finished; `metrics` has train_loss/train_error/val_loss/val_error."""

    epoch: int      # completed epochs so far (1-based count)
    step: int
    metrics: dict[str, float | None]


class TrainingRun:
    """Model + optimizer + position; `events()` trains, `snapshot()`/`restore()` checkpoint it."""

    def __init__(self, spec: dict[str, Any], data: TrainingData):
        training = spec["training"]
        self.data = data
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
        self.loss_fn = nn.SoftmaxLoss()
        self.epoch, self.batch, self.step = 0, 0, 0
        self.order: np.ndarray | None = None
        self.acc = _fresh_accumulators()
        self.runtime_before = 0.0        # seconds trained by earlier attempts
        self.started = time.monotonic()
        self.last_epoch_metrics: dict[str, Any] | None = None
        self.stopped: str | None = None  # "max_steps" | "max_runtime_s" when stopped early

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
        labels = self.data.y_train[rows]  # (B,)
        y = ndl.Tensor(labels, dtype="int64", requires_grad=False)
        self.optimizer.reset_grad()
        logits = self.model(x)  # (B, classes)
        loss = self.loss_fn(logits, y)
        loss.backward()
        loss_value = float(loss.numpy())
        if not math.isfinite(loss_value):
            raise TrainingError(f"loss became {'nan' if math.isnan(loss_value) else 'inf'} at step {self.step + 1}")
        self.optimizer.step()
        self.batch += 1
        self.step += 1
        self.acc["loss_sum"] += loss_value * len(labels)  # loss is a batch mean: weight by rows
        self.acc["errors"] += int(np.sum(logits.numpy().argmax(axis=1) != labels))
        self.acc["seen"] += len(labels)
        return StepDone(epoch=self.epoch, step=self.step, loss=loss_value)

    def _end_epoch(self) -> EpochDone:
        metrics = {**self._train_metrics(), **self.validate()}
        self.epoch += 1
        self.batch, self.order, self.acc = 0, None, _fresh_accumulators()
        self.last_epoch_metrics = metrics
        return EpochDone(epoch=self.epoch, step=self.step, metrics=metrics)

    def _train_metrics(self) -> dict[str, float | None]:
        seen = self.acc["seen"]
        if seen == 0:
            return {"train_loss": None, "train_error": None}
        return {"train_loss": self.acc["loss_sum"] / seen, "train_error": self.acc["errors"] / seen}

    def validate(self) -> dict[str, float | None]:
        """Validation loss and error in eval mode (None without validation data)."""
        if self.data.x_val is None:
            return {"val_loss": None, "val_error": None}
        loss, error = evaluate(self.model, model_input(self.model_spec, self.data.x_val), self.data.y_val)
        self.model.train()
        return {"val_loss": loss, "val_error": error}

    # ---- results ----
    def result(self) -> dict[str, Any]:
        """Final metrics at the point reached (a partial epoch reports its own train metrics)."""
        if self.acc["seen"] > 0 or self.last_epoch_metrics is None:
            metrics = {**self._train_metrics(), **self.validate()}
        else:
            metrics = dict(self.last_epoch_metrics)
        out = {**metrics, "epochs": self.epoch, "steps": self.step, "runtime_s": self.runtime_s()}
        if self.stopped:
            out["stopped"] = self.stopped
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """The model's trained state (needle layout)."""
        return self.model.state_dict()

    # ---- checkpoints ----
    def snapshot(self) -> Checkpoint:
        """Everything needed to continue exactly from here."""
        return Checkpoint(model_state=self.model.state_dict(), optimizer_state=self.optimizer.state_dict(),
                          rng_state=np.random.get_state() if self.rng_live else self.rng_state, epoch=self.epoch, batch=self.batch, step=self.step,
                          order=None if self.order is None else self.order.copy(), accumulators=dict(self.acc),
                          runtime_s=self.runtime_s(), last_epoch_metrics=self.last_epoch_metrics)

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue from a snapshot of the same spec."""
        self.model.load_state_dict(ckpt.model_state)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.rng_state, self.rng_live = ckpt.rng_state, False
        self.epoch, self.batch, self.step = ckpt.epoch, ckpt.batch, ckpt.step
        self.order = None if ckpt.order is None else np.asarray(ckpt.order, dtype=np.int64)
        self.acc = {"loss_sum": float(ckpt.accumulators["loss_sum"]), "errors": int(ckpt.accumulators["errors"]),
                    "seen": int(ckpt.accumulators["seen"])}
        self.runtime_before, self.started = ckpt.runtime_s, time.monotonic()
        self.last_epoch_metrics = ckpt.last_epoch_metrics


def _fresh_accumulators() -> dict[str, float | int]:
    return {"loss_sum": 0.0, "errors": 0, "seen": 0}


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean loss, error rate) of model on (x, y) in eval mode, without building a graph;
    x (N, ...) as the model takes it (see builders.model_input)."""
    model.eval()
    loss_fn = nn.SoftmaxLoss()
    loss_sum, errors = 0.0, 0
    with ndl.no_grad():
        for start in range(0, len(y), EVAL_BATCH):
            labels = y[start:start + EVAL_BATCH]
            logits = model(ndl.Tensor(x[start:start + EVAL_BATCH], dtype="float32", requires_grad=False))
            loss = loss_fn(logits, ndl.Tensor(labels, dtype="int64", requires_grad=False))
            loss_sum += float(loss.numpy()) * len(labels)
            errors += int(np.sum(logits.numpy().argmax(axis=1) != labels))
    return loss_sum / len(y), errors / len(y)
