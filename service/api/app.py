"""The app factory: store and local worker pool live for the app's lifespan."""
import asyncio
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI

from ..jobs.backends import open_store
from ..jobs.model_cache import ModelCache
from ..settings import Settings
from .auth import AuthMiddleware
from .body_limit import BodySizeLimitMiddleware
from .connections import BodyTimeoutMiddleware
from .dashboard import install_dashboard
from .docs import install_docs
from .errors import install_error_handlers
from .json_body import DOCUMENTED_BODIES
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
    app.state.model_cache = ModelCache(settings.model_cache_models, settings.model_cache_bytes)
    app.state.inference_slots = asyncio.Semaphore(settings.predict_concurrency)
    app.add_middleware(BodySizeLimitMiddleware, default_limit=settings.max_body_bytes,
                       path_limits={"/v1/datasets": settings.max_upload_bytes})
    app.add_middleware(BodyTimeoutMiddleware, timeout_s=settings.timeout_body_s)
    app.add_middleware(AuthMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware)  # added later runs earlier: 401s get them too
    install_error_handlers(app)
    for module in (jobs, events, outputs, series, datasets, sweeps):
        app.include_router(module.router, responses=AUTH_RESPONSES)
    app.include_router(health.router)
    app.openapi = lambda: _openapi_with_bodies(app)
    install_monitoring(app)  # its middleware is added last: it runs first and times everything
    install_docs(app)
    install_dashboard(app)
    return app


def _openapi_with_bodies(app: FastAPI) -> dict:
    """FastAPI's document plus the schemas of bodies routes parse themselves (json_body)."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, model in sorted(DOCUMENTED_BODIES.items()):
            body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in body_schema.pop("$defs", {}).items():
                components.setdefault(def_name, definition)
            components[name] = body_schema
        schema["components"]["schemas"] = dict(sorted(components.items()))
    return app.openapi_schema


@asynccontextmanager
async def _lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    store = open_store(settings)  # SQLite creates its data directory itself
    # Only jobs whose lease ran out go back to the queue: a job whose lease is still live belongs
    # to a worker that may well be alive (an external worker, or one outliving a restart).
    store.expire_leases(settings.max_attempts)
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
