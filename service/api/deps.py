"""Request dependencies, declared once as Annotated aliases."""
from typing import Annotated, Callable, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..jobs import JobStore
from ..jobs.results import ModelCache
from ..settings import Settings


# async although they do not await: FastAPI runs a sync dependency in its threadpool, a
# thread hop per dependency per request (~0.1 ms and GIL churn under concurrent polling).
async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    return request.app.state.settings


async def get_store(request: Request) -> JobStore:
    """The job store opened by the app's lifespan."""
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]


T = TypeVar("T")


async def quick_read(store: JobStore, read: Callable[..., T], *args, **kwargs) -> T:
    """A short store read for an async route: inline on the event loop when the store's reads are
    local (no thread hop, no GIL hand-off: the polling fast path), else in the threadpool."""
    if store.local_reads:
        return read(*args, **kwargs)
    return await run_in_threadpool(read, *args, **kwargs)


async def get_model_cache(request: Request) -> ModelCache:
    """Trained models built for /predict, kept by job id (LRU)."""
    return request.app.state.model_cache


ModelCacheDep = Annotated[ModelCache, Depends(get_model_cache)]
