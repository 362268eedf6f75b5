"""One error shape: {"detail": ...}; store errors map to 404/409, bad input never becomes a 500."""
import json
import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    app.add_exception_handler(StarletteHTTPException, _http_error)
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
    return not isinstance(value, (list, dict, str, bytes)) or len(repr(value)) <= 200


async def _validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        error = {k: v for k, v in error.items() if k != "url"}
        error["loc"] = strip_union_tags(tuple(error["loc"]), exc.body)
        if error.get("ctx") == {"reason": error["msg"]}:
            del error["ctx"]  # our own checks carry their message as the only context
        if "input" in error and (isinstance(error["input"], bytes) or
                                 not _small_input(error["input"])):
            del error["input"]
        elif isinstance(error.get("input"), float) and not math.isfinite(error["input"]):
            error["input"] = repr(error["input"])  # NaN/inf are not JSON; say which it was
        errors.append(error)
    return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an echoed input holding a lone surrogate stays encodable."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False,
                          separators=(",", ":")).encode("ascii")


# FastAPI's answer to a body it cannot decode (bad UTF-8, JSON nested too deep to parse)
UNPARSABLE_BODY = "There was an error parsing the body"


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """An unparsable body becomes the documented 422; a 405 lists every method of the path."""
    if exc.status_code == 400 and exc.detail == UNPARSABLE_BODY:
        return await _validation_failed(request, validation_error([(
            ("body",), "the body is not valid JSON (it must be UTF-8 and nested at most a few "
            "hundred levels deep)", None)]))
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        return JSONResponse({"detail": f"method {request.method} is not allowed here; use "
                             f"{', '.join(allowed)}"}, status_code=405,
                            headers={"Allow": ", ".join(allowed)})
    return await http_exception_handler(request, exc)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for this path (Starlette names only the methods
    of the first route that matched); HEAD wherever GET is served."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template)), request.url.path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


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
