"""Prometheus metrics at GET /metrics (text exposition format, prometheus-client).

Job figures are read from the store at scrape time (one grouped query), so they are right with any
number of API and worker processes; HTTP figures are this API process's own (scrape each one).
"""
import time

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..jobs import Status

router = APIRouter(tags=["health"])
# Training times span seconds to hours.
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
                    21600.0, 86400.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
TERMINAL = tuple(status.value for status in Status if status.terminal)


class StoreCollector(Collector):
    """needle_jobs, needle_workers_alive, needle_job_duration_seconds and
    needle_training_steps_total, computed from the store whenever Prometheus scrapes."""

    def __init__(self, app: FastAPI):
        self.app = app

    def collect(self):
        """One job_stats query and one live_workers count."""
        store, settings = self.app.state.store, self.app.state.settings
        if store is None:  # not started
            return
        stats = store.job_stats(DURATION_BUCKETS)
        jobs = GaugeMetricFamily("needle_jobs", "Jobs in the store by status", labels=["status"])
        for status, count in stats.jobs_by_status.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily("needle_workers_alive", "Workers that renewed their registration "
                                "within the lease time (every process, every host)",
                                value=store.live_workers(settings.lease_seconds))
        durations = HistogramMetricFamily("needle_job_duration_seconds", "Training time of "
                                          "finished jobs (first claim to end), by final status",
                                          labels=["status"])
        for status in TERMINAL:
            hist = stats.durations.get(status)
            counts = hist.bucket_counts if hist else (0,) * len(DURATION_BUCKETS)
            buckets = [(repr(bound), n) for bound, n in zip(DURATION_BUCKETS, counts)]
            buckets.append(("+Inf", hist.count if hist else 0))
            durations.add_metric([status], buckets, sum_value=hist.total_seconds if hist else 0.0)
        yield durations
        yield CounterMetricFamily("needle_training_steps", "Optimizer steps recorded by the jobs "
                                  "in the store (deleting jobs lowers it, seen as a counter reset)",
                                  value=stats.steps_total)


class HttpMetrics:
    """Request counts and latencies by method, route template and status."""

    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("needle_http_requests", "HTTP requests answered",
                                ["method", "route", "status"], registry=registry)
        self.latency = Histogram("needle_http_request_duration_seconds", "Time to answer an HTTP "
                                 "request (event streams are counted, not timed: they last as "
                                 "long as their job)", ["method", "route", "status"],
                                 buckets=LATENCY_BUCKETS, registry=registry)


class HttpMetricsMiddleware:
    """Pure ASGI, so event streams pass through untouched; labels by the matched route's template
    (`/v1/jobs/{job_id}`), never the raw path (unbounded label values)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response = {"status": "500", "stream": False}

        async def observing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = str(message["status"])
                headers = dict(message.get("headers", []))
                response["stream"] = headers.get(b"content-type", b"").startswith(b"text/event-stream")
            await send(message)
        try:
            await self.app(scope, receive, observing_send)
        finally:
            labels = (scope["method"], _route_template(scope), response["status"])
            self.metrics.requests.labels(*labels).inc()
            if not response["stream"]:
                self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path is None:
        return "unmatched"
    return f"{path}/{{path}}" if isinstance(route, Mount) else path


def install_monitoring(app: FastAPI) -> None:
    """A registry of the app's own (no process-global state), its middleware and GET /metrics."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(app))
    app.state.metrics_registry = registry
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry))
    app.include_router(router)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}},
                       403: {"description": "Not an admin key"}})
def prometheus_metrics(request: Request) -> Response:
    """Jobs by status, live workers, training time of finished jobs, steps, HTTP requests. Counts
    span every tenant: with auth on, an admin key (or NEEDLE_PUBLIC_METRICS=true)."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is not None and not principal.admin:
        raise HTTPException(403, "/metrics covers every tenant: it needs an admin key")
    return Response(generate_latest(request.app.state.metrics_registry),
                    media_type=CONTENT_TYPE_LATEST)
