"""Sweep operations written once for both backends, over a small `Db` adapter (qmark SQL).

Every function runs inside the caller's write transaction. Whatever changes how many trials of a
sweep are queued or running, or decides a pruning, first takes the sweep's lock (`Db.lock_sweep`:
a no-op under SQLite's BEGIN IMMEDIATE, `SELECT ... FOR UPDATE` on the sweep row in PostgreSQL),
always before any of its trials' rows, so concurrent transactions serialise per sweep without
deadlocking and each sees the others' committed effects.
"""
import json
import math
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any

from . import pruning
from .records import Job, PruneDecision, Status, Sweep, TrialPlan
from .store import Conflict, NotFound, check_active_jobs

SWEEP_COLUMNS = ("id, spec, created_at, n_trials, max_parallel, metric, mode, early_stopping, "
                 "cancel_requested, tenant, owner")
ACTIVE = (Status.queued.value, Status.running.value)
NOT_STARTED = (Status.waiting.value, Status.queued.value)
TERMINAL = tuple(sorted(s.value for s in Status if s.terminal))
TRIAL_TABLES = ("metrics", "checkpoints", "parameters", "job_specs", "sweep_decisions", "job_tags")


class Db(ABC):
    """One open transaction of a backend: qmark SQL, and the backend's own job rows."""

    @abstractmethod
    def all(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Every row of a query."""

    def one(self, sql: str, args: tuple = ()) -> tuple | None:
        """The first row, or None."""
        rows = self.all(sql, args)
        return rows[0] if rows else None

    @abstractmethod
    def run(self, sql: str, args: tuple = ()) -> int:
        """Execute a statement; the number of rows it touched."""

    @abstractmethod
    def json_param(self, value: Any) -> Any:
        """A parameter for a JSON document column (jobs.spec, job_specs.full_spec)."""

    @abstractmethod
    def lock_sweep(self, sweep_id: str) -> str | None:
        """Serialise with every other writer of this sweep until commit; its tenant (None: it
        does not exist)."""

    @abstractmethod
    def active_jobs(self, owner: str | None) -> int:
        """The owner's queued + running jobs, counted under the backend's per-owner quota lock."""

    @abstractmethod
    def jobs(self, where: str, args: tuple = ()) -> list[Job]:
        """Jobs (without their full spec) matching a WHERE clause."""

    @abstractmethod
    def brief(self, spec: dict) -> dict:
        """The brief form of a job spec (briefs.brief_spec)."""


def new_sweep_id() -> str:
    """A fresh sweep id (chosen before the insert, so a retried insert can find its first try)."""
    return uuid.uuid4().hex


def insert_sweep(db: Db, sweep_id: str, spec: dict, trials: list[TrialPlan], *, tenant: str,
                 owner: str | None, max_active_jobs: int | None) -> None:
    """Create the sweep and its trials in trial order: the first max_parallel queued, the rest
    waiting; the owner's active-job quota must hold the queued ones."""
    now = time.time()
    objective, max_parallel = spec["objective"], spec["max_parallel"]
    if max_active_jobs is not None:
        check_active_jobs(owner, db.active_jobs(owner), max_active_jobs,
                          adding=min(max_parallel, len(trials)))
    early = spec.get("early_stopping")
    db.run(f"INSERT INTO sweeps ({SWEEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
           (sweep_id, json.dumps(spec), now, len(trials), max_parallel, objective["metric"],
            objective["mode"], None if early is None else json.dumps(early), False, tenant, owner))
    for index, trial in enumerate(trials):
        job_id = uuid.uuid4().hex
        status = Status.queued if index < max_parallel else Status.waiting
        db.run("INSERT INTO jobs (id, status, spec, param_count, created_at, epochs, steps, "
               "sweep_id, trial, params, tenant, owner, priority) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (job_id, status.value, db.json_param(db.brief(trial.spec)), trial.param_count, now,
                trial.epochs, trial.steps, sweep_id, index, json.dumps(trial.params), tenant, owner,
                trial.spec.get("priority", 0)))
        db.run("INSERT INTO job_specs (job_id, full_spec) VALUES (?, ?)",
               (job_id, db.json_param(trial.spec)))
        db.run("UPDATE jobs SET name = ? WHERE id = ?", (trial.spec.get("name"), job_id))
        for key, value in (trial.spec.get("tags") or {}).items():  # so ?tag= finds trials too
            db.run("INSERT INTO job_tags (job_id, key, value) VALUES (?, ?, ?)", (job_id, key, value))


def lock_trial_sweep(db: Db, job_id: str) -> str | None:
    """Lock the sweep of job_id (if it is a trial; a trial's sweep_id never changes)."""
    row = db.one("SELECT sweep_id FROM jobs WHERE id = ?", (job_id,))
    if row is None or row[0] is None:
        return None
    db.lock_sweep(row[0])
    return row[0]


def promote_waiting(db: Db, sweep_id: str) -> int:
    """Queue waiting trials, in trial order, while fewer than max_parallel are queued or running
    (none once the sweep is cancelled). Returns how many were queued."""
    db.lock_sweep(sweep_id)
    row = db.one("SELECT max_parallel, cancel_requested FROM sweeps WHERE id = ?", (sweep_id,))
    if row is None or row[1]:
        return 0
    active = db.one(f"SELECT COUNT(*) FROM jobs WHERE sweep_id = ? AND status IN {ACTIVE}",
                    (sweep_id,))[0]
    free = row[0] - active
    if free <= 0:
        return 0
    return db.run("UPDATE jobs SET status = ? WHERE id IN (SELECT id FROM jobs WHERE sweep_id = ? "
                  "AND status = ? ORDER BY trial LIMIT ?)",
                  (Status.queued.value, sweep_id, Status.waiting.value, free))


def record_epochs(db: Db, job_id: str, points: list[tuple[str, int, int, dict]]) -> None:
    """A trial recorded these metric points (its sweep is locked): keep its latest objective and
    make the early-stopping decision at each deciding epoch, once; a prune flags the job for its
    worker (LeaseState.prune)."""
    epochs = [(epoch, values) for kind, epoch, _, values in points if kind == "epoch"]
    if not epochs:  # most flushes hold step points only: no read at all
        return
    row = db.one("SELECT sweep_id, epochs FROM jobs WHERE id = ?", (job_id,))
    if row is None or row[0] is None:
        return
    sweep_id, trial_epochs = row
    metric, mode, early = db.one("SELECT metric, mode, early_stopping FROM sweeps WHERE id = ?",
                                 (sweep_id,))
    early = None if early is None else json.loads(early)
    for epoch, values in epochs:
        value = _finite(values.get(metric))
        db.run("UPDATE jobs SET objective = ? WHERE id = ?", (value, job_id))
        if pruning.decides_at(early, epoch, trial_epochs) and \
                not _decide(db, sweep_id, job_id, epoch, value, early, mode):
            db.run("UPDATE jobs SET pruned_at = ? WHERE id = ? AND pruned_at IS NULL",
                   (epoch, job_id))
            return


def _decide(db: Db, sweep_id: str, job_id: str, epoch: int, value: float | None,
            early: dict, mode: str) -> bool:
    """The keep decision for (trial, epoch): the stored one if made before (a resumed trial
    records the epoch again), else made now from the values committed so far, and stored."""
    made = db.one("SELECT keep FROM sweep_decisions WHERE job_id = ? AND epoch = ?", (job_id, epoch))
    if made is not None:
        return bool(made[0])
    if early["type"] == "asha":
        peers = db.all("SELECT value FROM sweep_decisions WHERE sweep_id = ? AND epoch = ?",
                       (sweep_id, epoch))
    else:
        peers = db.all("SELECT d.value FROM sweep_decisions d JOIN jobs j ON j.id = d.job_id "
                       "WHERE d.sweep_id = ? AND d.epoch = ? AND j.status = ?",
                       (sweep_id, epoch, Status.succeeded.value))
    keep = pruning.keep(early, mode, value, [peer for (peer,) in peers])
    db.run("INSERT INTO sweep_decisions (sweep_id, job_id, epoch, value, keep) VALUES (?, ?, ?, ?, ?)",
           (sweep_id, job_id, epoch, value, keep))
    return keep


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def ensure_not_trial(db: Db, job_id: str) -> None:
    """Conflict for a trial: it is deleted with its sweep, so the sweep's table stays whole."""
    row = db.one("SELECT sweep_id FROM jobs WHERE id = ?", (job_id,))
    if row is not None and row[0] is not None:
        raise Conflict(f"job {job_id} is a trial of sweep {row[0]}; delete the sweep instead")


# ---- reads ----
def sweep_from_row(row: tuple, counts: dict[str, int] | None = None) -> Sweep:
    """A Sweep from SWEEP_COLUMNS."""
    sweep_id, spec, created_at, n_trials, max_parallel, metric, mode, early, cancel, tenant, owner = row
    return Sweep(id=sweep_id, spec=json.loads(spec), created_at=created_at, n_trials=n_trials,
                 max_parallel=max_parallel, metric=metric, mode=mode,
                 early_stopping=None if early is None else json.loads(early),
                 cancel_requested=bool(cancel), counts=counts or {}, tenant=tenant, owner=owner)


def get_sweep(db: Db, sweep_id: str, tenant: str | None = None) -> Sweep:
    """The sweep with its trial counts by status, or NotFound (also for another tenant's)."""
    scope, args = ("", ()) if tenant is None else (" AND tenant = ?", (tenant,))
    row = db.one(f"SELECT {SWEEP_COLUMNS} FROM sweeps WHERE id = ?{scope}", (sweep_id, *args))
    if row is None:
        raise NotFound(f"sweep {sweep_id} not found")
    return sweep_from_row(row, _counts(db, [sweep_id]).get(sweep_id))


def _lock_scoped(db: Db, sweep_id: str, tenant: str | None) -> None:
    """Lock the sweep for a client's write; NotFound if unknown or another tenant's."""
    owner_tenant = db.lock_sweep(sweep_id)
    if owner_tenant is None or (tenant is not None and owner_tenant != tenant):
        raise NotFound(f"sweep {sweep_id} not found")


def list_sweeps(db: Db, limit: int, cursor: str | None,
                tenant: str | None = None) -> tuple[list[Sweep], str | None]:
    """Newest first; the cursor is the seq of the last sweep of the previous page."""
    try:
        before = None if cursor is None else int(cursor)
    except ValueError:
        raise ValueError(f"invalid cursor {cursor!r}") from None
    where, args = [], []
    if before is not None:
        where.append("seq < ?")
        args.append(before)
    if tenant is not None:
        where.append("tenant = ?")
        args.append(tenant)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = db.all(f"SELECT seq, {SWEEP_COLUMNS} FROM sweeps {clause} ORDER BY seq DESC LIMIT ?",
                  (*args, limit + 1))
    page = rows[:limit]
    counts = _counts(db, [row[1] for row in page])
    next_cursor = str(page[-1][0]) if len(rows) > limit else None
    return [sweep_from_row(row[1:], counts.get(row[1])) for row in page], next_cursor


def _counts(db: Db, sweep_ids: list[str]) -> dict[str, dict[str, int]]:
    if not sweep_ids:
        return {}
    marks = ", ".join("?" * len(sweep_ids))
    counts: dict[str, dict[str, int]] = {}
    for sweep_id, status, n in db.all(f"SELECT sweep_id, status, COUNT(*) FROM jobs WHERE sweep_id "
                                      f"IN ({marks}) GROUP BY sweep_id, status", tuple(sweep_ids)):
        counts.setdefault(sweep_id, {})[status] = n
    return counts


def sweep_trials(db: Db, sweep_id: str, tenant: str | None = None) -> list[Job]:
    """The sweep's trials in trial order (NotFound for an unknown sweep)."""
    get_sweep(db, sweep_id, tenant)
    return db.jobs("sweep_id = ? ORDER BY trial", (sweep_id,))


def decisions(db: Db, sweep_id: str, tenant: str | None = None) -> list[PruneDecision]:
    """Every early-stopping decision of the sweep, in the order they were made."""
    get_sweep(db, sweep_id, tenant)
    return [PruneDecision(seq=seq, job_id=job_id, epoch=epoch, value=value, keep=bool(keep))
            for seq, job_id, epoch, value, keep in db.all(
                "SELECT seq, job_id, epoch, value, keep FROM sweep_decisions WHERE sweep_id = ? "
                "ORDER BY seq", (sweep_id,))]


# ---- cancel and delete ----
def cancel_sweep(db: Db, sweep_id: str, tenant: str | None = None) -> list[str]:
    """Cancel waiting and queued trials at once, flag running ones for their workers; Conflict if
    every trial has ended already. Returns the ids of the trials cancelled at once."""
    _lock_scoped(db, sweep_id, tenant)
    live = db.one(f"SELECT COUNT(*) FROM jobs WHERE sweep_id = ? AND status NOT IN {TERMINAL}",
                  (sweep_id,))[0]
    if live == 0:
        raise Conflict(f"sweep {sweep_id} has already ended")
    db.run("UPDATE sweeps SET cancel_requested = ? WHERE id = ?", (True, sweep_id))
    cancelled = [job_id for (job_id,) in db.all(
        f"SELECT id FROM jobs WHERE sweep_id = ? AND status IN {NOT_STARTED}", (sweep_id,))]
    db.run(f"UPDATE jobs SET status = ?, finished_at = ?, cancel_requested = ? WHERE sweep_id = ? "
           f"AND status IN {NOT_STARTED}", (Status.cancelled.value, time.time(), True, sweep_id))
    db.run("UPDATE jobs SET cancel_requested = ? WHERE sweep_id = ? AND status = ?",
           (True, sweep_id, Status.running.value))
    for job_id in cancelled:  # re-queued trials may hold a checkpoint
        db.run("DELETE FROM checkpoints WHERE job_id = ?", (job_id,))
    return cancelled


def delete_sweep(db: Db, sweep_id: str, tenant: str | None = None) -> None:
    """Remove an ended sweep with all its trials and their data; Conflict while a trial is active."""
    _lock_scoped(db, sweep_id, tenant)
    live = db.one(f"SELECT COUNT(*) FROM jobs WHERE sweep_id = ? AND status NOT IN {TERMINAL}",
                  (sweep_id,))[0]
    if live:
        raise Conflict(f"sweep {sweep_id} has {live} active trial(s); cancel it first")
    for table in TRIAL_TABLES:
        column = "sweep_id" if table == "sweep_decisions" else "job_id"
        where = "sweep_id = ?" if column == "sweep_id" else "job_id IN (SELECT id FROM jobs WHERE sweep_id = ?)"
        db.run(f"DELETE FROM {table} WHERE {where}", (sweep_id,))
    db.run("DELETE FROM jobs WHERE sweep_id = ?", (sweep_id,))
    db.run("DELETE FROM sweeps WHERE id = ?", (sweep_id,))
