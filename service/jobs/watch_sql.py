"""SQL shared by both backends for following jobs (marks) and monitoring (stats)."""
from .records import DurationHistogram, JobMark, JobStats, Status

# A job's mark: its state columns and its newest metric seq (an index seek on (job_id, seq)).
MARK_COLUMNS = ("j.id, j.status, j.epoch, j.epochs, j.step, j.steps, j.attempt, j.cancel_requested, "
                "COALESCE((SELECT MAX(m.seq) FROM metrics m WHERE m.job_id = j.id), 0)")


def mark_from_row(row: tuple) -> tuple[str, JobMark]:
    """(job id, mark) from a row selected with MARK_COLUMNS."""
    job_id, status, epoch, epochs, step, steps, attempt, cancel_requested, last_seq = row
    return job_id, JobMark(status=Status(status), progress=(epoch, epochs, step, steps),
                           attempt=attempt, cancel_requested=bool(cancel_requested),
                           last_seq=int(last_seq))


def stats_query(duration_bounds: tuple[float, ...]) -> str:
    """One grouped scan of the jobs table: per status, the count, the steps, and for jobs that
    ran and ended, the cumulative duration bucket counts, their number and their sum."""
    ran = "finished_at IS NOT NULL AND started_at IS NOT NULL"
    duration = "(finished_at - started_at)"
    buckets = "".join(f", SUM(CASE WHEN {ran} AND {duration} <= {float(bound)!r} THEN 1 ELSE 0 END)"
                      for bound in duration_bounds)
    return (f"SELECT status, COUNT(*), COALESCE(SUM(step), 0), "
            f"SUM(CASE WHEN {ran} THEN 1 ELSE 0 END), "
            f"COALESCE(SUM(CASE WHEN {ran} THEN {duration} ELSE 0 END), 0){buckets} "
            f"FROM jobs GROUP BY status")


def stats_from_rows(rows: list[tuple]) -> JobStats:
    """JobStats from the rows of stats_query."""
    by_status = {status.value: 0 for status in Status}
    durations, steps_total = {}, 0
    for status, count, steps, ran, seconds, *buckets in rows:
        by_status[status] = int(count)
        steps_total += int(steps)
        if Status(status).terminal:
            durations[status] = DurationHistogram(bucket_counts=tuple(int(b or 0) for b in buckets),
                                                  count=int(ran or 0), total_seconds=float(seconds))
    return JobStats(jobs_by_status=by_status, durations=durations, steps_total=steps_total)
