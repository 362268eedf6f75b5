"""Request dependencies, declared once as Annotated aliases."""
import asyncio
from contextlib import asynccontextmanager
from typing import Annotated, AsyncIterator, Callable, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..jobs import JobStore
from ..jobs.model_cache import ModelCache
from ..settings import Settings
from .auth import Principal

# Declares the bearer scheme in OpenAPI (Swagger UI's Authorize button); AuthMiddleware checks it.
BEARER = HTTPBearer(auto_error=False, scheme_name="APIKey",
                    description="An API key from `needle-service keys create` (not needed while "
                                "auth is off, e.g. on loopback with auth `auto`).")


# async although they do not await: FastAPI runs a sync dependency in its threadpool, a
# thread hop per dependency per request (~0.1 ms and GIL churn under concurrent polling).
async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


async def get_store(request: Request) -> JobStore:
    """The job store opened by the app's lifespan."""
    return request.app.state.store


async def get_principal(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> Principal:
    """The caller AuthMiddleware identified (the default principal while auth is off)."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is None:  # an open path (see auth.open_paths) has no principal
        raise HTTPException(401, "this route needs an API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


async def get_model_cache(request: Request) -> ModelCache:
    """The API process's cache of built models (LRU by job)."""
    return request.app.state.model_cache


@asynccontextmanager
async def inference_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of the NEEDLE_PREDICT_CONCURRENCY inference slots: the API's memory for
    /predict and /evaluate is at most that many budgets. Waiting happens on the event loop,
    not in a threadpool thread that other requests need."""
    slots: asyncio.Semaphore = request.app.state.inference_slots
    async with slots:
        yield


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
# Every route touching tenant data takes this; pass principal.tenant_filter to store reads.
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]


T = TypeVar("T")


async def quick_read(store: JobStore, read: Callable[..., T], *args, **kwargs) -> T:
    """A short store read for an async route: inline on the event loop when the store's reads are
    local (no thread hop, no GIL hand-off: the polling fast path), else as the store's coroutine
    on the loop if it has one (PostgreSQL's hot reads), else in the threadpool."""
    if store.local_reads:
        return read(*args, **kwargs)
    coroutine = store.coroutine_of(read)
    if coroutine is not None:
        return await coroutine(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)

