"""Job store, workers and the results facade the API uses."""
from .records import Dataset, Job, Lease, MetricPoint, Status
from .store import Conflict, JobStore, LeaseState, NotFound, StoreError

__all__ = ["Conflict", "Dataset", "Job", "JobStore", "Lease", "LeaseState", "MetricPoint",
           "NotFound", "Status", "StoreError"]
