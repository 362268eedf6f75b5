"""Immutable records the job store hands out; times are Unix seconds (float)."""
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# The tenant of everything created while auth is off (and of rows from before tenancy existed).
DEFAULT_TENANT = "default"


class Status(str, Enum):
    """Lifecycle of a training job."""

    waiting = "waiting"      # a sweep trial held back by the sweep's max_parallel; becomes queued
                             # (in trial order) when an earlier trial of its sweep ends
    queued = "queued"        # waiting for a worker to claim it (new, or re-queued after a lost worker)
    running = "running"      # claimed by exactly one worker, which holds a renewable lease
    succeeded = "succeeded"  # training finished; parameters stored
    failed = "failed"        # ended with an error message (bad data, NaN loss, attempts exhausted, ...)
    cancelled = "cancelled"  # stopped by a client; metrics recorded so far are kept
    pruned = "pruned"        # a sweep trial stopped by its sweep's early-stopping rule (ASHA or
                             # median) at an epoch end; its metrics and parameters are kept

    @property
    def terminal(self) -> bool:
        """The job has ended for good (nothing will change it again)."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.succeeded, Status.failed, Status.cancelled, Status.pruned})


@dataclass(frozen=True)
class Job:
    """One training job as stored."""

    id: str
    status: Status
    spec: dict[str, Any] | None       # the normalised JobSpec JSON (defaults filled in); None
                                      # when the read skipped it (list_jobs, get_job(with_spec=False))
    param_count: int
    created_at: float
    started_at: float | None = None   # first claim
    finished_at: float | None = None
    epoch: int = 0                    # completed epochs
    epochs: int = 0                   # total epochs planned
    step: int = 0                     # completed optimizer steps
    steps: int = 0                    # total steps planned (after max_steps)
    attempt: int = 0                  # 1 for the first run; incremented at each claim
    worker_id: str | None = None
    lease_expires_at: float | None = None
    cancel_requested: bool = False
    error: str | None = None
    result: dict[str, Any] | None = None   # final metrics, set when the job ends
    has_parameters: bool = False
    idempotency_key: str | None = None
    brief: dict[str, Any] | None = None  # the spec without inline arrays (briefs.brief_spec): what
                                         # polls show; None from stores that do not keep it
    tenant: str = DEFAULT_TENANT      # who owns it: other tenants never see it
    owner: str | None = None          # name of the API key that created it (quota accounting)
    priority: int = 0                 # higher is claimed first (spec["priority"])
    sweep_id: str | None = None          # the sweep this job is a trial of
    params: dict[str, Any] | None = None  # a trial's parameter values (dotted path -> value)
    trial: int | None = None             # a trial's number in its sweep's creation order (from 0)
    objective: float | None = None       # a trial's sweep objective at its last recorded epoch
    pruned_at: int | None = None         # the epoch at which its sweep decided to prune it

    @property
    def name(self) -> str | None:
        """The spec's optional name."""
        return (self.brief or self.spec or {}).get("name")

    @property
    def tags(self) -> dict[str, str]:
        """The spec's tags (string -> string)."""
        return (self.brief or self.spec or {}).get("tags") or {}


@dataclass(frozen=True)
class Lease:
    """A worker's claim on a running job; every worker write is fenced by it."""

    job_id: str
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class MetricPoint:
    """One recorded metric: kind "step" (values: loss) or "epoch" (train/val loss and error)."""

    seq: int                          # per-job, strictly increasing; the `after` cursor
    kind: str                         # "step" | "epoch"
    epoch: int
    step: int
    values: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """An uploaded dataset's metadata (the arrays live in the store as an .npz blob)."""

    id: str
    name: str | None
    n_rows: int
    n_features: int
    n_classes: int                    # max(y) + 1
    size_bytes: int
    created_at: float
    tenant: str = DEFAULT_TENANT
    owner: str | None = None          # name of the API key that uploaded it (quota accounting)


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored (its secret token only as a hash). Quotas: None = no limit."""

    name: str                         # unique; `keys revoke NAME`
    tenant: str                       # the key's name unless given
    admin: bool = False               # sees every tenant's objects; no quotas, no rate limit
    max_active_jobs: int | None = None    # queued + running jobs created with this key
    max_dataset_bytes: int | None = None  # stored bytes of datasets uploaded with this key
    max_priority: int = 0             # highest job priority this key may ask for
    rate_limit: float | None = None   # requests per second (bursts up to the same number)
    max_job_cost: float | None = None     # largest estimated training FLOPs of a job (see
                                          # api.submission.estimated_training_flops)
    created_at: float = 0.0
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Sweep:
    """A hyperparameter sweep; its trials are jobs with this sweep_id."""

    id: str
    spec: dict[str, Any]              # the normalised sweep spec (its base briefed)
    created_at: float
    n_trials: int
    max_parallel: int
    metric: str                       # objective metric, e.g. "val_loss"
    mode: str                         # "min" | "max"
    early_stopping: dict[str, Any] | None = None
    cancel_requested: bool = False
    counts: dict[str, int] = field(default_factory=dict)   # trials by status (reads fill it)
    tenant: str = DEFAULT_TENANT      # who owns it (and its trials): other tenants never see it
    owner: str | None = None          # name of the API key that created it


@dataclass(frozen=True)
class PruneDecision:
    """An early-stopping decision: trial job_id, at an epoch end, kept or pruned (made once)."""

    seq: int                          # the order in which decisions were made (per store)
    job_id: str
    epoch: int
    value: float | None               # the trial's objective at that epoch (None: not finite)
    keep: bool


@dataclass(frozen=True)
class TrialPlan:
    """What the store needs to create one trial job."""

    spec: dict[str, Any]
    params: dict[str, Any]
    param_count: int
    epochs: int
    steps: int


@dataclass(frozen=True)
class JobMark:
    """What an event follower compares between two looks at a job: its state and newest point."""

    status: Status
    progress: tuple[int, int, int, int]  # (epoch, epochs, step, steps)
    attempt: int
    cancel_requested: bool
    last_seq: int                     # newest metric point's seq (0: none yet)


@dataclass(frozen=True)
class DurationHistogram:
    """Finished jobs' training time (finished_at - started_at) of one final status."""

    bucket_counts: tuple[int, ...]    # cumulative: jobs with duration <= each bound, in order
    count: int
    total_seconds: float


@dataclass(frozen=True)
class JobStats:
    """Store-wide figures for monitoring, computed in one query at scrape time."""

    jobs_by_status: dict[str, int]    # every Status value, 0 when none
    durations: dict[str, DurationHistogram]   # by terminal status, jobs that ran
    steps_total: int                  # optimizer steps recorded by every job in the store


@dataclass(frozen=True)
class MetricCurve:
    """One step value's whole curve and the epoch points, read up to one seq (display series)."""

    steps: list[int]                  # steps of the step points holding the value, in seq order
    values: list[float]
    epochs: list[MetricPoint]
    last_seq: int                     # every point with seq <= last_seq is in here (0: none)
