"""Job store, workers and the results facade the API uses."""
from .records import (DEFAULT_TENANT, ApiKey, Dataset, DurationHistogram, Job, JobMark, JobStats,
                      Lease, MetricPoint, Status)
from .store import (ActiveJobsQuotaExceeded, Conflict, JobStore, LeaseState, NotFound,
                    QuotaExceeded, StorageQuotaExceeded, StoreError)

__all__ = ["DEFAULT_TENANT", "ActiveJobsQuotaExceeded", "ApiKey", "Conflict", "Dataset",
           "DurationHistogram", "Job", "JobMark", "JobStats", "JobStore", "Lease", "LeaseState",
           "MetricPoint", "NotFound", "QuotaExceeded", "Status", "StorageQuotaExceeded",
           "StoreError"]
