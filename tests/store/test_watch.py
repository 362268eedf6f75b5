"""Following jobs (marks, change pushes) and monitoring figures, on every backend."""
import queue

import pytest

from service.jobs import NotFound, Status

from .test_contract import claim_lease, make_job

BOUNDS = (0.5, 10.0)


def test_marks_change_with_status_progress_and_metrics(store):
    job = make_job(store)
    other = make_job(store)
    marks = store.watch_marks([job.id, other.id, "unknown"])
    assert set(marks) == {job.id, other.id}
    first = marks[job.id]
    assert (first.status, first.progress, first.attempt, first.last_seq) == (Status.queued, (0, 2, 0, 10), 0, 0)
    _, lease = claim_lease(store)
    running = store.watch_marks([job.id])[job.id]
    assert running.status is Status.running and running.attempt == 1
    assert store.set_progress(lease, epoch=1, step=5, epochs=2, steps=10)
    assert store.add_metrics(lease, [("step", 0, 5, {"loss": 1.0})])
    after = store.watch_marks([job.id])[job.id]
    newest = store.get_metrics(job.id)[-1].seq
    assert after.progress == (1, 2, 5, 10) and after.last_seq == newest
    assert store.watch_marks([other.id])[other.id] == marks[other.id]  # untouched
    assert store.watch_marks([]) == {}


def test_job_stats_count_by_status_and_bucket_durations(store):
    make_job(store)
    make_job(store)
    _, lease = claim_lease(store)
    assert store.set_progress(lease, epoch=2, step=7, epochs=2, steps=10)
    assert store.finish(lease, Status.succeeded, result={})
    stats = store.job_stats(BOUNDS)
    assert stats.jobs_by_status == {**{status.value: 0 for status in Status},
                                    "queued": 1, "succeeded": 1}
    assert stats.steps_total == 7
    done = stats.durations["succeeded"]
    assert done.count == 1 and done.bucket_counts == (1, 1) and 0 <= done.total_seconds < 0.5


def test_cancelled_while_queued_has_no_duration(store):
    job = make_job(store)
    store.request_cancel(job.id)
    stats = store.job_stats(BOUNDS)
    assert stats.jobs_by_status["cancelled"] == 1
    assert stats.durations["cancelled"].count == 0


def test_postgres_pushes_changes_from_another_process_store(store_factory):
    watcher, writer = store_factory(), store_factory()
    seen: queue.Queue = queue.Queue()
    stop = watcher.watch_changes(seen.put)
    if stop is None:
        assert type(watcher).__name__ == "SQLiteStore"  # SQLite followers poll instead
        return
    try:
        assert seen.get(timeout=10) is None            # listening: re-check everything once
        job = make_job(writer)
        _, lease = claim_lease(writer)
        assert _next_id(seen) == job.id                 # queued -> running
        assert writer.add_metrics(lease, [("step", 0, 1, {"loss": 1.0}), ("step", 0, 2, {"loss": 0.9})])
        assert _next_id(seen) == job.id
        writer.heartbeat(lease, 30.0)                   # lease renewals stay silent
        assert writer.set_progress(lease, epoch=0, step=2, epochs=2, steps=10)
        assert _next_id(seen) == job.id
        with pytest.raises(queue.Empty):
            seen.get(timeout=0.3)                       # two points, one commit: one notification
    finally:
        stop()


def _next_id(seen: queue.Queue) -> str:
    return seen.get(timeout=10)


def test_metric_curve_reads_one_value_and_the_epoch_points(store):
    job = make_job(store)
    _, lease = claim_lease(store)
    assert store.add_metrics(lease, [("step", 0, 1, {"loss": 2.0, "lr": 0.1}),
                                     ("step", 0, 2, {"loss": float("nan")}),  # skipped
                                     ("step", 0, 3, {"lr": 0.1}),              # no loss: skipped
                                     ("epoch", 1, 3, {"train_loss": 1.5, "val_loss": None}),
                                     ("step", 1, 4, {"loss": 1.0})])
    curve = store.metric_curve(job.id, "loss")
    assert (curve.steps, curve.values) == ([1, 4], [2.0, 1.0])
    assert [(p.epoch, p.values) for p in curve.epochs] == [(1, {"train_loss": 1.5, "val_loss": None})]
    assert curve.last_seq == store.get_metrics(job.id)[-1].seq
    assert store.metric_curve(job.id, "lr").steps == [1, 3]
    empty = store.metric_curve(make_job(store).id, "loss")
    assert (empty.steps, empty.epochs, empty.last_seq) == ([], [], 0)
    with pytest.raises(NotFound):
        store.metric_curve("unknown", "loss")
