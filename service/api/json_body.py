"""JSON request bodies parsed and validated off the event loop (a multi-megabyte spec would
otherwise stall every other request, health checks included), documented like FastAPI's own."""
import json
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

M = TypeVar("M", bound=BaseModel)
JSON_TYPES = ("application/json",)
# the models whose schemas openapi.json must carry although no route declares them as a body
DOCUMENTED_BODIES: dict[str, type[BaseModel]] = {}


def json_body(model: type[BaseModel], examples: dict | None = None,
              description: str | None = None) -> dict:
    """openapi_extra for a route that takes `model` as its JSON body through parse_json."""
    DOCUMENTED_BODIES[model.__name__] = model
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if examples:
        content["examples"] = examples
    body = {"required": True, "content": {"application/json": content}}
    if description:
        body["description"] = description
    return {"requestBody": body}


async def parse_json(request: Request, model: type[M]) -> M:
    """The request body validated as `model` in a worker thread; 415 for a non-JSON content
    type, 422 (FastAPI's shape, locations under "body") for anything else wrong."""
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type.lower() not in JSON_TYPES:
        raise HTTPException(415, f"send the body as application/json, not {content_type!r}")
    body = await request.body()
    return await run_in_threadpool(validate_json, model, body)


def validate_json(model: type[M], body: bytes) -> M:
    """`model` from raw JSON bytes, or a RequestValidationError naming each bad field."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors, body=_parsed_or_none(body)) from None


def _parsed_or_none(body: bytes) -> Any:
    # only for tidying error locations: a body pydantic could not parse stays None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None
