"""One error shape: {"detail": ...}; store errors map to 404/409, bad input never becomes a 500."""
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..jobs import ActiveJobsQuotaExceeded, Conflict, NotFound, StorageQuotaExceeded
from ..specs.errors import plain_loc

log = logging.getLogger(__name__)
Loc = tuple[str | int, ...]


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(ActiveJobsQuotaExceeded, _too_many_active_jobs)
    app.add_exception_handler(StorageQuotaExceeded, _storage_quota)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(Exception, _internal_error)


def validation_error(issues: list[tuple[Loc, str, Any]]) -> RequestValidationError:
    """A 422 in FastAPI's own format for checks made after parsing (caps, store lookups)."""
    return RequestValidationError([
        {"type": "value_error", "loc": loc, "msg": message, "input": value}
        for loc, message, value in issues
    ])


def strip_union_tags(loc: Loc, body: Any) -> Loc:
    """Drop the discriminator values pydantic inserts into body locations, so that
    ("body", "model", "sequential", "layers", 2) becomes ("body", "model", "layers", 2):
    a path that exists in the submitted JSON (see specs.errors.plain_loc)."""
    if not loc or loc[0] != "body" or body is None:
        return loc
    return (loc[0], *plain_loc(loc[1:], body))


def _small_input(value: Any) -> bool:
    # echoing a whole 2,000-row matrix back in an error helps nobody
    return not isinstance(value, (list, dict)) or len(repr(value)) <= 200


async def _validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        error = {k: v for k, v in error.items() if k != "url"}
        error["loc"] = strip_union_tags(tuple(error["loc"]), exc.body)
        if error.get("ctx") == {"reason": error["msg"]}:
            del error["ctx"]  # our own checks carry their message as the only context
        if "input" in error and not _small_input(error["input"]):
            del error["input"]
        elif isinstance(error.get("input"), float) and not math.isfinite(error["input"]):
            error["input"] = repr(error["input"])  # NaN/inf are not JSON; say which it was
        errors.append(error)
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse({"detail": str(exc) or "not found"}, status_code=404)


async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
    return JSONResponse({"detail": str(exc) or "conflict"}, status_code=409)


# An active-job quota frees up when one of the key's jobs ends, which the API cannot foresee:
# clients are told to come back after a typical short job.
ACTIVE_JOBS_RETRY_AFTER_SECONDS = 10


async def _too_many_active_jobs(request: Request, exc: ActiveJobsQuotaExceeded) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=429,
                        headers={"Retry-After": str(ACTIVE_JOBS_RETRY_AFTER_SECONDS)})


async def _storage_quota(request: Request, exc: StorageQuotaExceeded) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=413)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal server error"}, status_code=500)
