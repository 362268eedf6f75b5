"""Metrics of a model on labelled rows, streamed in batches in eval mode (no graph): what
validation, the training result and POST /v1/jobs/{id}/evaluate report."""
import math
from typing import Any, Iterable

import numpy as np

import needle as ndl
from service.specs.cost import MAX_EVAL_CHUNK

# rows per forward pass when memory allows (eval mode: rows are independent); callers size
# smaller chunks with service.specs.cost.eval_rows_per_chunk
EVAL_BATCH = MAX_EVAL_CHUNK


class MetricSums:
    """Running sums over batches; `metrics()` turns them into means (float64 throughout)."""

    def __init__(self, regression: bool, width: int, confusion: bool = False):
        self.regression, self.width = regression, width
        self.rows, self.loss_sum = 0, 0.0
        self.errors = 0
        self.confusion = np.zeros((width, width), dtype=np.int64) if confusion and not regression else None
        self.sq_sum = self.abs_sum = 0.0
        self.target_sum = np.zeros(width)     # (K,) for R^2
        self.target_sq_sum = np.zeros(width)  # (K,)
        self.sq_sum_per = np.zeros(width)     # (K,)

    def add(self, outputs: np.ndarray, targets: np.ndarray, batch_loss: float) -> None:
        """One batch: outputs (B, K), targets (B,) labels or (B, K), batch_loss its mean loss."""
        rows = len(targets)
        self.rows += rows
        self.loss_sum += batch_loss * rows
        if self.regression:
            diff = outputs.astype(np.float64) - targets  # (B, K)
            self.sq_sum_per += (diff * diff).sum(axis=0)
            self.abs_sum += float(np.abs(diff).sum())
            self.target_sum += targets.sum(axis=0)
            self.target_sq_sum += (targets.astype(np.float64) ** 2).sum(axis=0)
            return
        predicted = outputs.argmax(axis=1)  # (B,)
        self.errors += int(np.sum(predicted != targets))
        if self.confusion is not None:
            np.add.at(self.confusion, (targets, predicted), 1)

    def metrics(self) -> dict[str, Any]:
        """loss + error (classification) or loss + rmse + mae (regression)."""
        n = max(self.rows, 1)
        if self.regression:
            values = n * self.width
            return {"loss": self.loss_sum / n, "rmse": math.sqrt(float(self.sq_sum_per.sum()) / values),
                    "mae": self.abs_sum / values}
        return {"loss": self.loss_sum / n, "error": self.errors / n}

    def report(self) -> dict[str, Any]:
        """metrics() plus accuracy, per-class precision/recall and the confusion matrix
        (classification) or R^2 (regression, mean over targets; 1 - SS_res / SS_tot)."""
        out = {"rows": self.rows, **self.metrics()}
        if self.regression:
            n = max(self.rows, 1)
            ss_tot = self.target_sq_sum - self.target_sum ** 2 / n  # (K,)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.where(ss_tot > 0, 1 - self.sq_sum_per / ss_tot, np.nan)
            out["r2"] = None if np.isnan(r2).all() else float(np.nanmean(r2))
            return out
        out["accuracy"] = 1 - out["error"]
        if self.confusion is not None:
            tp = np.diag(self.confusion).astype(np.float64)  # (K,)
            predicted, actual = self.confusion.sum(axis=0), self.confusion.sum(axis=1)
            out["precision"] = [float(t / p) if p else None for t, p in zip(tp, predicted)]
            out["recall"] = [float(t / a) if a else None for t, a in zip(tp, actual)]
            out["confusion_matrix"] = self.confusion.tolist()
        return out


def batches(x: np.ndarray, y: np.ndarray, size: int = EVAL_BATCH) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(x, y) in consecutive slices of `size` rows."""
    for start in range(0, len(y), size):
        yield x[start:start + size], y[start:start + size]


def accumulate(model, loss_fn, sums: MetricSums, x: np.ndarray, y: np.ndarray,
               chunk_rows: int = EVAL_BATCH) -> MetricSums:
    """Run model (eval mode, no graph) over (x, y) in chunks of chunk_rows, adding to `sums`."""
    model.eval()
    with ndl.no_grad(), np.errstate(over="ignore", invalid="ignore"):
        for xb, yb in batches(x, y, chunk_rows):
            outputs = model(ndl.Tensor(xb, dtype="float32", requires_grad=False))
            target = ndl.Tensor(yb, dtype="float32" if sums.regression else "int64", requires_grad=False)
            sums.add(outputs.numpy(), yb, float(loss_fn(outputs, target).numpy()))
    return sums


def evaluate_metrics(model, x: np.ndarray, y: np.ndarray, loss_fn, regression: bool,
                     chunk_rows: int = EVAL_BATCH) -> dict[str, float]:
    """loss and error, or loss, rmse and mae, of model on (x, y) in eval mode."""
    width = y.shape[1] if regression else 1
    return accumulate(model, loss_fn, MetricSums(regression, width), x, y, chunk_rows).metrics()


def train_metrics(acc: dict[str, float | int], regression: bool, width: int) -> dict[str, float | None]:
    """An epoch's running training metrics (train mode, as the batches were trained)."""
    seen = acc["seen"]
    if regression:
        if seen == 0:
            return {"train_loss": None, "train_rmse": None}
        return {"train_loss": acc["loss_sum"] / seen, "train_rmse": math.sqrt(acc["sq_sum"] / (seen * width))}
    if seen == 0:
        return {"train_loss": None, "train_error": None}
    return {"train_loss": acc["loss_sum"] / seen, "train_error": acc["errors"] / seen}
