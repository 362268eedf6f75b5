"""The app factory: store and local worker pool live for the app's lifespan."""
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from ..jobs.backends import open_store, uses_sqlite
from ..settings import Settings
from .auth import AuthMiddleware
from .body_limit import BodySizeLimitMiddleware
from .dashboard import install_dashboard
from .docs import install_docs
from .errors import install_error_handlers
from .monitoring import install_monitoring
from .routes import datasets, events, health, jobs, outputs, series, sweeps
from .security_headers import SecurityHeadersMiddleware
from .streams import EventHub

AUTH_RESPONSES = {
    401: {"description": "Missing, unknown or revoked API key (`WWW-Authenticate: Bearer`)"},
    429: {"description": "Rate limit or active-job quota exceeded; see `Retry-After`"},
}
DESCRIPTION = """Train neural networks on demand on **needle**, a numpy deep-learning engine.

Submit a job spec, poll it, read its metrics, download its parameters (json, safetensors, npz;
needle or torch layout) and classify rows with it. Training runs in separate worker processes."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; the lifespan opens the store and starts `settings.workers` local workers."""
    settings = settings or Settings()
    app = FastAPI(title="needle-service", version=_version(), description=DESCRIPTION,
                  lifespan=_lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = None
    app.state.pool = None
    app.state.events = None
    app.add_middleware(BodySizeLimitMiddleware, default_limit=settings.max_body_bytes,
                       path_limits={"/v1/datasets": settings.max_upload_bytes})
    app.add_middleware(AuthMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware)  # added later runs earlier: 401s get them too
    install_error_handlers(app)
    for module in (jobs, events, outputs, series, datasets, sweeps):
        app.include_router(module.router, responses=AUTH_RESPONSES)
    app.include_router(health.router)
    install_monitoring(app)  # its middleware is added last: it runs first and times everything
    install_docs(app)
    install_dashboard(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    store = open_store(settings)  # SQLite creates its data directory itself
    if uses_sqlite(settings):
        # the embedded workers died with the previous server: their jobs go back to the queue
        store.requeue_running(settings.max_attempts)
    pool = _start_pool(settings) if settings.workers > 0 else None
    hub = EventHub(store, poll_seconds=settings.events_poll_seconds,
                   push_poll_seconds=settings.events_push_poll_seconds)
    await hub.start()
    app.state.store, app.state.pool, app.state.events = store, pool, hub
    try:
        yield
    finally:
        await hub.close()
        if pool is not None:
            pool.stop(timeout=10)
        store.close()


def _start_pool(settings: Settings):
    from ..jobs.pool import WorkerPool  # spawns processes; not needed for API-only servers
    pool = WorkerPool(settings)
    pool.start()
    return pool


def _version() -> str:
    try:
        return version("needle-service")
    except PackageNotFoundError:
        return "0.0.0"
