"""Resources the API returns and the small request bodies it takes (the job spec lives in specs)."""
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..jobs import Dataset, Job, MetricPoint, Status
from ..jobs.briefs import brief_spec
from ..specs import Rows, SourceSpec, table_issues
from ..specs.data import Target
from ..specs.errors import spec_error
from .examples import (DATASET_EXAMPLE, EVALUATION_EXAMPLE, JOB_EXAMPLE, JOB_SUMMARY_EXAMPLE,
                       METRICS_EXAMPLE, PREDICTION_EXAMPLE)



class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)


class Progress(_Out):
    """Completed and planned epochs and optimizer steps."""

    epoch: int
    epochs: int
    step: int
    steps: int


class JobSummary(_Out):
    """A job without its spec (list pages)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_SUMMARY_EXAMPLE]})

    id: str
    name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    status: Status
    progress: Progress
    attempt: int = Field(description="1 for the first run; grows when a lost job is re-run")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    has_parameters: bool
    param_count: int
    result: dict[str, Any] | None = Field(description="Final metrics once the job has ended")
    error: str | None
    tenant: str = Field(description="The owning tenant (the creating API key's)")
    priority: int = Field(description="Higher is claimed first")
    sweep_id: str | None = Field(default=None, description="The sweep this job is a trial of")
    trial: int | None = Field(default=None, description="Its number in the sweep (from 0)")
    params: dict[str, Any] | None = Field(default=None, description="A trial's parameter values")

    @classmethod
    def from_job(cls, job: Job, **extra: Any) -> "JobSummary":
        """Present a stored job."""
        return cls(id=job.id, name=job.name, tags=job.tags, status=job.status,
                   progress=Progress(epoch=job.epoch, epochs=job.epochs, step=job.step,
                                     steps=job.steps),
                   attempt=job.attempt, created_at=_utc(job.created_at),
                   started_at=_utc(job.started_at), finished_at=_utc(job.finished_at),
                   cancel_requested=job.cancel_requested, has_parameters=job.has_parameters,
                   param_count=job.param_count, result=job.result, error=job.error,
                   tenant=job.tenant, priority=job.priority, sweep_id=job.sweep_id, trial=job.trial,
                   params=job.params, **extra)


class JobOut(JobSummary):
    """A job with its normalised spec (every default filled in). Inline data sources appear
    without their `x`/`y` arrays, replaced by `n_rows` and `n_features`, so that polling a job
    stays cheap whatever its size; GET /v1/jobs/{id}/spec returns the spec with the arrays."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [JOB_EXAMPLE]})

    spec: dict[str, Any] = Field(description="The normalised spec; inline x/y arrays elided")

    @classmethod
    def from_job(cls, job: Job, **extra: Any) -> "JobOut":
        """Present a stored job with its brief spec."""
        brief = job.brief if job.brief is not None else brief_spec(job.spec)
        return super().from_job(job, spec=brief, **extra)


class JobPage(_Out):
    """One page of jobs, newest first; pass next_cursor as `cursor` for the next page."""

    items: list[JobSummary]
    next_cursor: str | None


class MetricPointOut(_Out):
    """A recorded metric: kind "step" ({"loss"}) or "epoch" (train/val loss and error)."""

    seq: int
    kind: Literal["step", "epoch"]
    epoch: int
    step: int
    values: dict[str, float | None]

    @classmethod
    def from_point(cls, point: MetricPoint) -> "MetricPointOut":
        """Present a stored point."""
        return cls(seq=point.seq, kind=point.kind, epoch=point.epoch, step=point.step,
                   values=point.values)


class MetricsPage(_Out):
    """Points with seq > after; pass next_after as `after` to poll for newer ones."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [METRICS_EXAMPLE]})

    points: list[MetricPointOut]
    next_after: int


class CurveSeries(_Out):
    """A step curve sized for display, the epoch points, and the cursor to follow from."""

    key: str = Field(description="The step value plotted (e.g. loss)")
    total: int = Field(description="Step points stored with this value")
    downsampled: bool = Field(description="True when `step`/`values` hold fewer points than stored")
    step: list[int]
    values: list[float]
    epochs: list[MetricPointOut]
    last_seq: int = Field(description="The newest point read: follow with events or "
                          "/metrics?after=last_seq")


class PredictRequest(_Out):
    """Rows to classify: x (N, F) finite floats, or (N, C, H, W) images for a model with an
    input_shape (the two forms give the same predictions)."""

    x: Rows

    @model_validator(mode="after")
    def _rectangular(self) -> "PredictRequest":
        issues = table_issues(self.x)
        if issues:
            raise spec_error("PredictRequest", issues)
        return self


class Prediction(_Out):
    """A classifier's outputs in eval mode: logits (N, C), softmax probabilities (N, C), argmax (N,)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PREDICTION_EXAMPLE]})

    logits: list[list[float]]
    probabilities: list[list[float]]
    classes: list[int]


class RegressionPrediction(_Out):
    """A regression model's outputs in eval mode: (N, K)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outputs": [[1.25], [-0.5]]}]})

    outputs: list[list[float]]


class EvaluateRequest(_Out):
    """Labelled rows to evaluate the trained model on: any data source of a job spec."""

    data: SourceSpec


class Evaluation(_Out):
    """Metrics of the trained model on the given rows (eval mode, the model's preprocessing)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EVALUATION_EXAMPLE]})

    task: Literal["classification", "regression"]
    rows: int
    loss: float = Field(description="mean of the job's training loss")
    error: float | None = Field(default=None, description="classification: 1 - accuracy")
    accuracy: float | None = None
    precision: list[float | None] | None = Field(default=None, description="per class (None: "
                                                 "never predicted)")
    recall: list[float | None] | None = Field(default=None, description="per class (None: absent)")
    confusion_matrix: list[list[int]] | None = Field(default=None, description="[true][predicted]")
    rmse: float | None = Field(default=None, description="regression")
    mae: float | None = None
    r2: float | None = Field(default=None, description="regression: mean over targets")


class DatasetCreate(_Out):
    """A dataset sent as JSON: x (N, F) floats or (N, C, H, W) images; y (N,) integer labels
    >= 0, or float regression targets (N,) or (N, K)."""

    name: str | None = Field(default=None, max_length=200)
    x: Rows
    y: list[Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _rectangular(self) -> "DatasetCreate":
        issues = table_issues(self.x, self.y)
        if issues:
            raise spec_error("DatasetCreate", issues)
        return self


class DatasetOut(_Out):
    """An uploaded dataset's metadata."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [DATASET_EXAMPLE]})

    id: str
    name: str | None
    n_rows: int
    n_features: int
    n_classes: int = Field(description="max(y) + 1 for integer labels; 0 for float "
                           "(regression) targets")
    size_bytes: int
    created_at: datetime
    tenant: str = Field(description="The owning tenant; only its jobs may train on it")

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> "DatasetOut":
        """Present stored metadata."""
        return cls(id=dataset.id, name=dataset.name, n_rows=dataset.n_rows,
                   n_features=dataset.n_features, n_classes=dataset.n_classes,
                   size_bytes=dataset.size_bytes, created_at=_utc(dataset.created_at),
                   tenant=dataset.tenant)


class Health(_Out):
    """Liveness."""

    status: Literal["ok"]


class Readiness(_Out):
    """Readiness: the store answers and, when local workers are configured, some are alive."""

    status: Literal["ready", "not ready"]
    store: bool
    workers_configured: int
    workers_alive: int
    workers_registered: int
    problems: list[str]
