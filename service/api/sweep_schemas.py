"""Sweep resources: status, trial counts, the trials table and the best trial so far."""
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import ConfigDict, Field

from ..jobs import Job, Status
from ..jobs.records import Sweep
from .schemas import _Out, _utc


class SweepStatus(str, Enum):
    """A sweep's state, derived from its trials."""

    running = "running"      # some trial has not ended (waiting, queued or running)
    succeeded = "succeeded"  # every trial ended and at least one succeeded
    failed = "failed"        # every trial ended and none succeeded
    cancelled = "cancelled"  # cancelled by a client; every trial has ended


def sweep_status(sweep: Sweep) -> SweepStatus:
    """Running until every trial is terminal; then cancelled, succeeded or failed."""
    if any(not Status(status).terminal for status in sweep.counts):
        return SweepStatus.running
    if sweep.cancel_requested:
        return SweepStatus.cancelled
    return SweepStatus.succeeded if sweep.counts.get("succeeded") else SweepStatus.failed


class Objective(_Out):
    """What ranks the trials."""

    metric: str
    mode: str


class SweepSummary(_Out):
    """A sweep without its trials (list pages)."""

    id: str
    status: SweepStatus
    created_at: datetime
    n_trials: int
    max_parallel: int
    objective: Objective
    early_stopping: dict[str, Any] | None
    cancel_requested: bool
    counts: dict[Status, int] = Field(description="Trials by status")

    @classmethod
    def from_sweep(cls, sweep: Sweep, **extra: Any) -> "SweepSummary":
        """Present a stored sweep."""
        return cls(id=sweep.id, status=sweep_status(sweep), created_at=_utc(sweep.created_at),
                   n_trials=sweep.n_trials, max_parallel=sweep.max_parallel,
                   objective=Objective(metric=sweep.metric, mode=sweep.mode),
                   early_stopping=sweep.early_stopping, cancel_requested=sweep.cancel_requested,
                   counts={Status(status): n for status, n in sweep.counts.items()}, **extra)


class TrialRow(_Out):
    """One trial: its job, parameter values, objective, epochs run and status."""

    trial: int
    job_id: str
    status: Status
    params: dict[str, Any]
    objective: float | None = Field(description="Final value for ended trials, else the last epoch's")
    epochs_run: int
    epochs: int
    pruned_at_epoch: int | None
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @classmethod
    def from_job(cls, job: Job, metric: str) -> "TrialRow":
        """Present a trial job."""
        return cls(trial=job.trial, job_id=job.id, status=job.status, params=job.params or {},
                   objective=trial_objective(job, metric), epochs_run=job.epoch, epochs=job.epochs,
                   pruned_at_epoch=job.pruned_at, started_at=_utc(job.started_at),
                   finished_at=_utc(job.finished_at), error=job.error)


def trial_objective(job: Job, metric: str) -> float | None:
    """The final metric of an ended trial, else the one of its last recorded epoch."""
    if job.status.terminal and job.result and job.result.get(metric) is not None:
        return job.result[metric]
    return job.objective


class SweepOut(SweepSummary):
    """A sweep with its spec, its trials in creation order and the best trial so far."""

    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The normalised sweep spec (inline arrays elided)")
    trials: list[TrialRow]
    best: TrialRow | None = Field(description="Best objective among succeeded trials (among all "
                                  "trials with an objective while none has succeeded)")
    total_epochs: int = Field(description="Epochs run by all trials together")

    @classmethod
    def from_sweep_and_trials(cls, sweep: Sweep, trials: list[Job]) -> "SweepOut":
        """Present a sweep with its trials."""
        rows = [TrialRow.from_job(job, sweep.metric) for job in trials]
        return cls.from_sweep(sweep, spec=sweep.spec, trials=rows, best=best_trial(rows, sweep.mode),
                              total_epochs=sum(row.epochs_run for row in rows))


def best_trial(rows: list[TrialRow], mode: str) -> TrialRow | None:
    """The best objective (ties: the earlier trial), preferring trials that ran to the end."""
    scored = [row for row in rows if row.objective is not None]
    finished = [row for row in scored if row.status is Status.succeeded]
    candidates = finished or scored
    if not candidates:
        return None
    sign = 1 if mode == "min" else -1
    return min(candidates, key=lambda row: (sign * row.objective, row.trial))


class SweepPage(_Out):
    """One page of sweeps, newest first; pass next_cursor as `cursor` for the next page."""

    items: list[SweepSummary]
    next_cursor: str | None
