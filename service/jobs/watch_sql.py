"""SQL shared by both backends for following jobs (marks), curves and monitoring (stats)."""
import json
import math

from .records import DurationHistogram, JobMark, JobStats, MetricCurve, MetricPoint, Status

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


def curve_from_rows(key: str, step_rows: list[tuple], epoch_rows: list[tuple],
                    last_seq: int) -> MetricCurve:
    """A MetricCurve from (step, vals JSON) step rows and (seq, epoch, step, vals) epoch rows."""
    steps, values = [], []
    for (step, _), point in zip(step_rows, _parse_all([vals for _, vals in step_rows])):
        value = point.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            steps.append(step)
            values.append(float(value))
    epochs = [MetricPoint(seq=seq, kind="epoch", epoch=epoch, step=step, values=json.loads(vals))
              for seq, epoch, step, vals in epoch_rows]
    return MetricCurve(steps=steps, values=values, epochs=epochs, last_seq=int(last_seq))


def _parse_all(texts: list) -> list[dict]:
    """Many small JSON objects parsed as one array: one C-level parse instead of a Python call
    per point (5x faster on 100,000 points). SQLite hands out bytes, PostgreSQL str."""
    if not texts:
        return []
    if isinstance(texts[0], str):
        return json.loads("[" + ",".join(texts) + "]")
    return json.loads(b"[" + b",".join(bytes(t) for t in texts) + b"]")
