"""Job store, workers and the results facade the API uses."""
from .records import Dataset, DurationHistogram, Job, JobMark, JobStats, Lease, MetricPoint, Status
from .store import Conflict, JobStore, LeaseState, NotFound, StoreError

__all__ = ["Conflict", "Dataset", "DurationHistogram", "Job", "JobMark", "JobStats", "JobStore",
           "Lease", "LeaseState", "MetricPoint", "NotFound", "Status", "StoreError"]
