"""Train one claimed job under its lease: progress, metrics, checkpoints and the final outcome."""
import logging
import math
import threading
import time
import traceback
from typing import Callable

from ..settings import Settings
from ..training import (EpochDone, TrainingError, TrainingRun, checkpoint_from_bytes, checkpoint_to_bytes,
                        parameters_to_bytes, prepare_run)
from .lease_keeper import LeaseKeeper
from .metric_budget import StepAggregator, steps_per_point
from .records import Job, Lease, Status
from .store import JobStore, LeaseState, NotFound

log = logging.getLogger("needle_service.worker")
METRICS_FLUSH_SECONDS = 0.5  # step metrics reach the store at least this often
EPOCH_FLUSH_SECONDS = 0.1    # an epoch end flushes metrics and progress unless one was this recent
# The job row is read after every step, but no more often than this: a check costs ~8 us on
# SQLite and ~80 us on PostgreSQL, which would be 8 % of a 1 ms step. Cancel latency stays tiny.
CHECK_MIN_SECONDS = 0.02
# Checkpoints by time: one when checkpoint_interval_s of training have passed since the last (at an
# epoch end or between steps), so a crash loses at most that much and small jobs pay nothing.
# Serialising and writing one of a mid-size model costs ~20 ms, so the training thread only takes
# the snapshot (array copies, ~1 ms) and a background thread writes it while training goes on; a
# graceful release writes synchronously.


class JobExecution:
    """One attempt at one job; never raises (every failure ends in the store or in the log)."""

    def __init__(self, store: JobStore, settings: Settings, job: Job, worker_id: str,
                 should_stop: Callable[[], bool]):
        self.store, self.settings, self.job = store, settings, job
        self.lease = Lease(job.id, worker_id, job.attempt)
        self.should_stop = should_stop
        self.pending: list[tuple[str, int, int, dict]] = []
        self.last_flush = time.monotonic()
        self.last_check = float("-inf")
        self.checkpoint_writer: threading.Thread | None = None
        self.checkpoint_interval = job.spec["training"].get("checkpoint_interval_s") or settings.checkpoint_interval_s
        self.last_checkpoint = time.monotonic()
        self.store_failing_since: float | None = None
        self.keeper = LeaseKeeper(store, self.lease, lease_s=settings.lease_seconds,
                                  interval_s=settings.heartbeat_seconds)
        self.steps = StepAggregator(1)

    def run(self) -> str:
        """Train to an outcome: succeeded, failed, cancelled, released or lost. The lease is
        renewed on its own thread the whole time (preparation, steps, validation, writes)."""
        with self.keeper:
            try:
                return self._run_to_outcome()
            finally:
                self._wait_for_checkpoint()  # no writer thread outlives its attempt

    def _run_to_outcome(self) -> str:
        """Never raises: every failure ends in the store or in the log."""
        try:
            return self._train()
        except TrainingError as exc:
            self.pending += self.steps.flush()
            self._flush_metrics()  # the loss curve up to a divergence is worth keeping
            return self._end(Status.failed, error=str(exc))
        except Exception as exc:  # a bug or a store outage must not take the worker down
            log.error("job %s failed unexpectedly:\n%s", self.job.id, traceback.format_exc())
            try:
                return self._end(Status.failed, error=self._failure_message(exc))
            except Exception:
                log.exception("could not record the failure of job %s", self.job.id)
                return "lost"

    def _failure_message(self, exc: Exception) -> str:
        """What the client reads: no exception text, which may show internals (it is logged)."""
        return (f"the service failed while running this job (an internal error, logged by "
                f"the worker for job {self.job.id}, attempt {self.job.attempt}); "
                "resubmitting may help, and the operator can find the details in the log")

    def _train(self) -> str:
        _slow_preparation_for_tests(self.settings.test_slow_preparation_s)
        run = self._prepare()
        run = self._resume(run)
        if self.keeper.lost:
            log.warning("job %s: lease lost during preparation, abandoning this attempt", self.job.id)
            return "lost"
        epochs, steps = run.planned()
        self.steps = StepAggregator(steps_per_point(steps, self.settings.max_step_points))
        self.store.set_progress(self.lease, epoch=run.epoch, step=run.step, epochs=epochs, steps=steps)
        self.last_checkpoint = time.monotonic()
        for event in run.events():
            if isinstance(event, EpochDone):
                self.pending += self.steps.flush()
                self.pending.append(("epoch", event.epoch, event.step, json_safe(event.metrics)))
                # a sweep trial's epoch points may prune it, so they go out at once; other jobs
                # write them (and the progress) at most every EPOCH_FLUSH_SECONDS: a 4-step epoch
                # of a few milliseconds must not pay a store write each
                if self.job.sweep_id is not None or time.monotonic() - self.last_flush >= EPOCH_FLUSH_SECONDS:
                    self._flush(run)
                # recording an epoch may have pruned a sweep trial: look now, so it stops
                # exactly at the epoch end rather than a few steps into the next epoch
                self.last_check = float("-inf")
            else:
                self.pending += self.steps.add(event.epoch, event.step,
                                               {"loss": event.loss, "lr": event.lr})
            if time.monotonic() - self.last_checkpoint >= self.checkpoint_interval and not run.finished():
                self._checkpoint_in_background(run)
            state = self._poll(run)
            if state is LeaseState.lost:
                log.warning("job %s: lease lost, abandoning this attempt", self.job.id)
                return "lost"
            if state is LeaseState.cancel:
                return self._end(Status.cancelled, run=run)
            if state is LeaseState.prune:
                return self._end(Status.pruned, run=run)
            if self.should_stop():
                return self._release(run)
        return self._end(Status.succeeded, run=run)

    def _checkpoint_in_background(self, run: TrainingRun) -> None:
        """Snapshot now; serialise and store it on a writer thread (one write in flight at a time)."""
        self._wait_for_checkpoint()
        self.last_checkpoint = time.monotonic()
        # The metrics and progress up to the snapshot's step are stored first: a resume keeps
        # the points up to the checkpoint's step and re-records only those after it, and the
        # job never shows less progress than its checkpoint holds.
        try:
            self._flush(run)
        except Exception as exc:  # no checkpoint ahead of the stored metrics; retried next time
            log.warning("job %s: metrics not flushed, checkpoint skipped: %s", self.job.id, exc)
            return
        self.checkpoint_writer = threading.Thread(target=self._write_checkpoint, args=(run.snapshot(),),
                                                  name=f"checkpoint-{self.job.id}", daemon=True)
        self.checkpoint_writer.start()

    def _write_checkpoint(self, snapshot) -> None:
        try:
            self.store.save_checkpoint(self.lease, checkpoint_to_bytes(snapshot))
        except Exception as exc:  # the next checkpoint (or the release) tries again
            log.warning("job %s: checkpoint not saved: %s", self.job.id, exc)

    def _wait_for_checkpoint(self) -> None:
        if self.checkpoint_writer is not None:
            self.checkpoint_writer.join()
            self.checkpoint_writer = None

    def _prepare(self) -> TrainingRun:
        return prepare_run(self.job.spec, mnist_dir=self.settings.mnist_dir, fetch_dataset=self._fetch_dataset,
                           fetch_parameters=self._fetch_parameters,
                           eval_memory_bytes=self.settings.worker_memory_bytes)

    def _fetch_parameters(self, job_id: str) -> bytes:
        try:
            blob = self.store.get_parameters(job_id)
        except NotFound:
            blob = None
        if blob is None:
            raise TrainingError(f"training.init_from: job {job_id} no longer has parameters (deleted?)")
        return blob

    def _fetch_dataset(self, dataset_id: str) -> bytes:
        try:
            # scoped to the job's tenant: a job trains only on its own tenant's datasets
            return self.store.get_dataset_blob(dataset_id, tenant=self.job.tenant)
        except NotFound:
            raise TrainingError(f"dataset {dataset_id} no longer exists (it was deleted)") from None

    def _resume(self, run: TrainingRun) -> TrainingRun:
        """Continue from the last checkpoint, dropping metrics recorded after it."""
        blob = self.store.load_checkpoint(self.job.id)
        if blob is not None:
            try:
                run.restore(checkpoint_from_bytes(blob))
                log.info("job %s: resumed at epoch %d step %d", self.job.id, run.epoch, run.step)
            except (ValueError, KeyError) as exc:
                log.warning("job %s: unusable checkpoint (%s); starting over", self.job.id, exc)
                run = self._prepare()
        self.store.truncate_metrics(self.lease, after_step=run.step)
        return run

    def _poll(self, run: TrainingRun) -> LeaseState:
        """Per step: one cheap read (at most every CHECK_MIN_SECONDS); a lease renewal and a
        metrics flush when they are due.
        A store error is retried on the next step; after a lease's length of errors the
        lease must be presumed lost (another worker may own the job by now)."""
        now = time.monotonic()
        if self.keeper.lost:
            return LeaseState.lost
        try:
            if now - self.last_check >= CHECK_MIN_SECONDS:
                state = self.store.check(self.lease)
                self.last_check = now
            else:
                return LeaseState.ok
            if state is LeaseState.ok and now - self.last_flush >= METRICS_FLUSH_SECONDS:
                self._flush(run)
        except Exception as exc:
            if self.store_failing_since is None:
                self.store_failing_since = now
                log.warning("job %s: store error, still training: %s", self.job.id, exc)
            if now - self.store_failing_since > self.settings.lease_seconds:
                return LeaseState.lost
            return LeaseState.ok
        self.store_failing_since = None
        return state

    def _flush_metrics(self) -> None:
        self.last_flush = time.monotonic()
        if self.pending:
            self.store.add_metrics(self.lease, self.pending)
            self.pending = []

    def _flush(self, run: TrainingRun) -> None:
        self._flush_metrics()
        epochs, steps = run.planned()
        self.store.set_progress(self.lease, epoch=run.epoch, step=run.step, epochs=epochs, steps=steps)

    def _release(self, run: TrainingRun) -> str:
        """Graceful shutdown: checkpoint where we are and hand the job back to the queue."""
        self.pending += self.steps.flush()  # the next worker starts a new group after run.step
        self._flush(run)
        self._wait_for_checkpoint()
        self.store.save_checkpoint(self.lease, checkpoint_to_bytes(run.snapshot()))
        self.store.release(self.lease)
        log.info("job %s: released at step %d", self.job.id, run.step)
        return "released"

    def _end(self, status: Status, *, error: str | None = None, run: TrainingRun | None = None) -> str:
        self._wait_for_checkpoint()  # finishing drops the checkpoint: no write may land after it
        result = parameters = None
        if run is not None:
            self.pending += self.steps.flush()
            self._flush(run)
            result = json_safe(run.result())
            if status in (Status.cancelled, Status.pruned):
                result["stopped"] = status.value
            parameters = parameters_to_bytes(run.state_dict(), self.job.spec["model"],
                                             preprocess=run.data.preprocess, task=run.task)
        if not self.store.finish(self.lease, status, error=error, result=result, parameters=parameters):
            log.warning("job %s: lease lost before it could end as %s", self.job.id, status.value)
            return "lost"
        log.info("job %s: %s%s", self.job.id, status.value, f" ({error})" if error else "")
        return status.value


def _slow_preparation_for_tests(seconds: float) -> None:
    """NEEDLE_TEST_SLOW_PREPARATION_S (tests only, 0 = off): spend this long in data preparation
    as a CPU-bound loop holding the GIL in turns, like a slow parser, so tests can show that the
    lease survives preparation longer than the lease itself."""
    if seconds <= 0:
        return
    log.warning("test hook: spending %.1f s in data preparation", seconds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(10_000))


def json_safe(values: dict) -> dict:
    """Non-finite floats (e.g. a validation loss that overflowed) become None: JSON has no NaN/inf."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
