"""Liveness and readiness probes."""
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..deps import SettingsDep, StoreDep
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process answers (on the event loop itself: no thread hop, so a busy threadpool
    cannot delay it)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, summary="Readiness",
            responses={503: {"model": Readiness, "description": "Not ready; see problems"}})
def readyz(request: Request, settings: SettingsDep, store: StoreDep) -> Readiness | JSONResponse:
    """200 when the store answers and, with local workers configured, at least one is alive."""
    problems = []
    store_ok = _ping(store)
    if not store_ok:
        problems.append("the job store does not answer")
    pool = request.app.state.pool
    alive = pool.alive() if pool is not None else 0
    if settings.workers > 0 and alive == 0:
        problems.append(f"none of the {settings.workers} local workers is alive")
    registered = _registered(store, settings.lease_seconds) if store_ok else 0
    readiness = Readiness(status="not ready" if problems else "ready", store=store_ok,
                          workers_configured=settings.workers, workers_alive=alive,
                          workers_registered=registered, problems=problems)
    if problems:
        return JSONResponse(readiness.model_dump(mode="json"), status_code=503)
    return readiness


def _ping(store) -> bool:
    try:
        return bool(store.ping())
    except Exception:  # a dead database is a readiness answer, not a 500
        return False


def _registered(store, within_seconds: float) -> int:
    try:
        return store.live_workers(within_seconds)
    except Exception:
        return 0
