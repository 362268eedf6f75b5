"""Server-sent event streams of jobs: one follower per process (hub), shared by every stream."""
from .hub import EventHub, JobFeed
from .sse import job_event_stream

__all__ = ["EventHub", "JobFeed", "job_event_stream"]
