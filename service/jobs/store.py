"""The job store interface: the jobs table is the queue. SQLite and PostgreSQL implement it.

Tenancy: every job and dataset has a `tenant` (and the `owner`, the name of the API key that
created it). Reads and writes of one object take `tenant: str | None`: None (admins, workers)
reaches every tenant; a tenant name makes another tenant's object a NotFound, exactly as if it
did not exist. Lists take the same argument. Creation takes the creator's `tenant` and `owner`
and, optionally, the owner key's quota, which is checked atomically with the insert (quota
errors below). New store methods touching one tenant's objects follow the same pattern.
"""
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from enum import Enum

from .records import (DEFAULT_TENANT, ApiKey, Dataset, Job, JobMark, JobStats, Lease, MetricCurve,
                      MetricPoint, PruneDecision, Status, Sweep, TrialPlan)


class StoreError(Exception):
    """Base class for store errors the API maps to HTTP statuses."""


class NotFound(StoreError):
    """Unknown job or dataset id (404)."""


class Conflict(StoreError):
    """Wrong state for the operation, or an idempotency key reused with another body (409)."""


class QuotaExceeded(StoreError):
    """A key's quota would be exceeded by this insert; nothing was created."""

    def __init__(self, message: str, *, limit: int, used: int):
        super().__init__(message)
        self.limit, self.used = limit, used


class ActiveJobsQuotaExceeded(QuotaExceeded):
    """Too many queued + running jobs for the key (429 with Retry-After)."""


class StorageQuotaExceeded(QuotaExceeded):
    """The key's stored dataset bytes would exceed its quota (413)."""


def check_active_jobs(owner: str | None, used: int, limit: int, adding: int = 1) -> None:
    """ActiveJobsQuotaExceeded when the owner's `used` active jobs plus the `adding` new ones
    (a sweep queues up to max_parallel trials at once) would pass `limit` (for stores)."""
    if used + adding > limit:
        queues = "" if adding == 1 else f" and this sweep would queue {adding} more at once"
        raise ActiveJobsQuotaExceeded(f"key {owner!r} already has {used} active (queued or running) "
                                      f"jobs{queues}; its quota is {limit}", limit=limit, used=used)


def check_storage(owner: str | None, used: int, adding: int, limit: int) -> None:
    """StorageQuotaExceeded when adding bytes to what the owner stores would pass its quota."""
    if used + adding > limit:
        raise StorageQuotaExceeded(
            f"storing this dataset ({adding} bytes) would bring key {owner!r} to {used + adding} "
            f"bytes of datasets; its quota is {limit} bytes ({used} in use): delete datasets "
            "or ask for a larger quota", limit=limit, used=used)


class LeaseState(str, Enum):
    """What a worker learns when it checks its job."""

    ok = "ok"                # keep going
    cancel = "cancel"        # a client asked to cancel: stop at this step, keep metrics
    lost = "lost"            # the lease is no longer ours (expired and re-claimed, deleted): stop writing
    prune = "prune"          # the job's sweep pruned it (early stopping): stop now, end as pruned


class JobStore(ABC):
    """Durable jobs, metrics, checkpoints, parameters, datasets and worker registrations.

    Every method is safe to call from many processes (and, for PostgreSQL, many hosts) at once.
    Worker writes take a Lease and succeed only while it is still held (status running, same worker
    and attempt); they return False otherwise, so a worker that lost its job never clobbers another.
    """

    # True when a primary-key read is a local call of some microseconds that cannot stall on a
    # network (embedded SQLite): the API then serves job polls on its event loop rather than
    # hopping to a threadpool thread. Network stores keep False (an outage would block the loop).
    local_reads: bool = False

    def coroutine_of(self, read: Callable) -> Callable[..., Awaitable] | None:
        """For a network store: a coroutine function that does what the bound read method `read`
        of this store does on the running event loop, if the store has one (the API prefers it
        to a threadpool hop). None by default."""
        return None

    # ---- lifecycle ----
    @abstractmethod
    def migrate(self) -> None:
        """Create or upgrade the schema; idempotent, safe to run concurrently at start."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the database answers (readiness)."""

    # ---- jobs: API side ----
    @abstractmethod
    def create_job(self, spec: dict, *, param_count: int, epochs: int, steps: int,
                   idempotency_key: str | None = None, request_hash: str | None = None,
                   tenant: str = DEFAULT_TENANT, owner: str | None = None, priority: int = 0,
                   max_active_jobs: int | None = None) -> tuple[Job, bool]:
        """Insert a queued job (its full spec apart from the row, which keeps brief_spec(spec));
        returns (job, created), job.spec being `spec` itself. Idempotency keys are per tenant:
        with a key the tenant already used, same request_hash -> (existing job, False), even
        at quota; different hash -> Conflict. With max_active_jobs, ActiveJobsQuotaExceeded when
        `owner` already has that many queued + running jobs (checked in the insert's
        transaction, under a lock per owner, so concurrent submissions never exceed it)."""

    @abstractmethod
    def get_job(self, job_id: str, *, with_spec: bool = True, tenant: str | None = None) -> Job:
        """The job, or NotFound (also when it belongs to another tenant than `tenant`). Every
        read fills Job.brief (briefs.brief_spec of the spec);
        the full spec, which may hold megabytes of inline data, only when with_spec is true
        (otherwise Job.spec is None), so that polling stays cheap whatever the spec's size."""

    @abstractmethod
    def list_jobs(self, *, status: Status | None = None, limit: int = 50,
                  cursor: str | None = None, tenant: str | None = None,
                  tags: list[tuple[str, str]] | None = None,
                  name_prefix: str | None = None,
                  sweep_id: str | None = None) -> tuple[list[Job], str | None]:
        """Newest first, filtered before the limit (status; tenant; every (key, value) tag;
        names that start with name_prefix, case-sensitive; the trials of sweep_id); returns
        (page, next_cursor or None).
        Jobs come without their full spec (Job.spec is None)."""

    @abstractmethod
    def request_cancel(self, job_id: str, *, tenant: str | None = None) -> Job:
        """Queued (or waiting) -> cancelled at once; running -> cancel_requested (the worker stops at its next
        step); terminal -> Conflict; unknown -> NotFound. Returns the updated job (spec None)."""

    @abstractmethod
    def delete_job(self, job_id: str, *, tenant: str | None = None) -> None:
        """Remove a terminal job and all its data (metrics, checkpoint, parameters);
        Conflict if not terminal or a sweep's trial (delete the sweep), NotFound if unknown."""

    @abstractmethod
    def get_metrics(self, job_id: str, *, after: int = 0, limit: int = 10_000,
                    tenant: str | None = None) -> list[MetricPoint]:
        """Points with seq > after, in seq order (NotFound for an unknown job)."""

    @abstractmethod
    def metric_curve(self, job_id: str, key: str, *, tenant: str | None = None) -> MetricCurve:
        """Every step point's `key` value (points without it skipped) and every epoch point, up
        to the newest seq at the time of the call (NotFound for an unknown job or another
        tenant's). Reads only the columns a curve needs: 100,000 points in a fraction of a second."""

    @abstractmethod
    def get_parameters(self, job_id: str, *, tenant: str | None = None) -> bytes | None:
        """The stored trained state (safetensors bytes), or None if the job has none yet (or
        belongs to another tenant)."""

    # ---- following jobs (event streams) and monitoring ----
    @abstractmethod
    def watch_marks(self, job_ids: Iterable[str]) -> dict[str, JobMark]:
        """One read for many jobs: each existing job's mark (unknown ids are left out). An event
        follower compares marks between polls and only reads the jobs whose mark changed."""

    def watch_changes(self, on_change: Callable[[str | None], None]) -> Callable[[], None] | None:
        """Push instead of poll: call on_change(job_id) (from another thread) soon after a job's
        status, progress or metrics change is committed, and on_change(None) when changes may
        have been missed (reconnect). Returns a function that stops it, or None when this store
        cannot push (followers then poll watch_marks)."""
        return None

    @abstractmethod
    def job_stats(self, duration_bounds: tuple[float, ...]) -> JobStats:
        """Counts by status, finished jobs' training times bucketed by `duration_bounds`
        (ascending seconds) per final status, and the steps every job recorded."""

    # ---- jobs: worker side ----
    @abstractmethod
    def claim(self, worker_id: str, lease_seconds: float) -> Job | None:
        """Atomically take the next queued job: status running, this worker, attempt + 1, lease
        until now + lease_seconds, started_at set on first claim; the job has its full spec.
        None when the queue is empty. Exactly one worker can win a given job.

        Order (fair across tenants): highest priority first; among those, the tenant with the
        fewest running jobs; ties to the tenant whose last claim is oldest (never claimed
        first); then the tenant's oldest job."""

    @abstractmethod
    def expire_leases(self, max_attempts: int) -> int:
        """Running jobs whose lease expired: re-queue them, or fail them ("worker lost; gave up
        after N attempts") when attempt >= max_attempts. Returns how many were touched."""

    @abstractmethod
    def heartbeat(self, lease: Lease, lease_seconds: float) -> LeaseState:
        """Renew the lease; report cancel requests and lost leases."""

    @abstractmethod
    def check(self, lease: Lease) -> LeaseState:
        """Read-only version of heartbeat (called every step; must be cheap)."""

    @abstractmethod
    def set_progress(self, lease: Lease, *, epoch: int, step: int, epochs: int, steps: int) -> bool:
        """Record completed epoch/step counts and totals."""

    @abstractmethod
    def add_metrics(self, lease: Lease, points: list[tuple[str, int, int, dict]]) -> bool:
        """Append (kind, epoch, step, values) points; seq is assigned by the store. For a sweep
        trial, in the same transaction (sweep locked), an epoch point updates its objective and,
        at a deciding epoch, makes the early-stopping decision once (see sweep_sql)."""

    @abstractmethod
    def truncate_metrics(self, lease: Lease, *, after_step: int) -> bool:
        """Drop points with step > after_step (a resumed job re-records them identically)."""

    @abstractmethod
    def save_checkpoint(self, lease: Lease, blob: bytes) -> bool:
        """Replace the job's checkpoint."""

    @abstractmethod
    def load_checkpoint(self, job_id: str) -> bytes | None:
        """The last checkpoint, or None."""

    @abstractmethod
    def finish(self, lease: Lease, status: Status, *, error: str | None = None,
               result: dict | None = None, parameters: bytes | None = None) -> bool:
        """End the job (succeeded / failed / cancelled / pruned), store parameters, drop the
        checkpoint; a sweep trial ending queues its sweep's next waiting trial."""

    @abstractmethod
    def release(self, lease: Lease) -> bool:
        """Graceful shutdown: back to queued (keeping the checkpoint) for another worker."""

    # ---- sweeps ----
    @abstractmethod
    def create_sweep(self, spec: dict, trials: list[TrialPlan], *, tenant: str = DEFAULT_TENANT,
                     owner: str | None = None, max_active_jobs: int | None = None) -> Sweep:
        """Insert the sweep (spec: the normalised sweep spec with its objective, max_parallel and
        early_stopping) and its trial jobs in trial order, atomically: the first max_parallel
        queued, the rest waiting (queued in order as earlier trials end). Trials belong to the
        sweep's tenant and owner and take their spec's priority. With max_active_jobs,
        ActiveJobsQuotaExceeded when the owner's active jobs plus the trials queued at once would
        pass it; later promotions only replace ended trials, so they never pass it either."""

    @abstractmethod
    def get_sweep(self, sweep_id: str, *, tenant: str | None = None) -> Sweep:
        """The sweep with its trial counts by status, or NotFound (also another tenant's)."""

    @abstractmethod
    def list_sweeps(self, *, limit: int = 50, cursor: str | None = None,
                    tenant: str | None = None) -> tuple[list[Sweep], str | None]:
        """Newest first; (page, next_cursor or None); ValueError for a bad cursor."""

    @abstractmethod
    def sweep_trials(self, sweep_id: str, *, tenant: str | None = None) -> list[Job]:
        """The sweep's trial jobs in trial order (without their full spec), or NotFound."""

    @abstractmethod
    def sweep_decisions(self, sweep_id: str, *, tenant: str | None = None) -> list[PruneDecision]:
        """The sweep's early-stopping decisions in the order they were made, or NotFound."""

    @abstractmethod
    def cancel_sweep(self, sweep_id: str, *, tenant: str | None = None) -> Sweep:
        """Cancel waiting and queued trials at once and flag running ones (their workers stop at
        the next step); Conflict when every trial has ended; NotFound if unknown."""

    @abstractmethod
    def delete_sweep(self, sweep_id: str, *, tenant: str | None = None) -> None:
        """Remove an ended sweep with its trials and all their data; Conflict while a trial is
        active; NotFound if unknown."""

    # ---- workers registry (readiness) ----
    @abstractmethod
    def register_worker(self, worker_id: str, info: dict) -> None:
        """Record (or refresh) a live worker."""

    @abstractmethod
    def unregister_worker(self, worker_id: str) -> None:
        """Forget a worker that exits cleanly."""

    @abstractmethod
    def live_workers(self, within_seconds: float) -> int:
        """Workers seen within the last `within_seconds`."""

    # ---- datasets ----
    @abstractmethod
    def create_dataset(self, *, name: str | None, blob: bytes, n_rows: int, n_features: int,
                       n_classes: int, tenant: str = DEFAULT_TENANT, owner: str | None = None,
                       max_bytes: int | None = None) -> Dataset:
        """Store an .npz blob holding float32 `x` (n_rows, n_features) and int64 `y` (n_rows,).
        With max_bytes, StorageQuotaExceeded when `owner`'s stored datasets plus this blob would
        exceed it (atomic with the insert, like create_job's quota)."""

    @abstractmethod
    def get_dataset(self, dataset_id: str, *, tenant: str | None = None) -> Dataset:
        """Metadata, or NotFound (also for another tenant's dataset)."""

    @abstractmethod
    def get_dataset_blob(self, dataset_id: str, *, tenant: str | None = None) -> bytes:
        """The .npz bytes, or NotFound."""

    @abstractmethod
    def list_datasets(self, *, tenant: str | None = None) -> list[Dataset]:
        """Newest first (one tenant's, or every tenant's for None)."""

    @abstractmethod
    def delete_dataset(self, dataset_id: str, *, tenant: str | None = None) -> None:
        """Remove it (NotFound if unknown). Jobs already using it fail with a clear message."""

    # ---- API keys (the secret token is never stored, only its hash: see jobs.keys) ----
    @abstractmethod
    def create_key(self, key: ApiKey, token_hash: str) -> ApiKey:
        """Store a new key; Conflict if its name is taken (revoked keys keep their names)."""

    @abstractmethod
    def find_key(self, token_hash: str) -> ApiKey | None:
        """The key with this token hash, revoked ones included (check ApiKey.active); None if
        there is none."""

    @abstractmethod
    def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first, revoked ones included."""

    @abstractmethod
    def revoke_key(self, name: str) -> ApiKey:
        """Mark the key revoked (idempotent); NotFound for an unknown name."""
