"""What a job produces: metrics while it runs, then parameters and predictions."""
import math
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter

from ...jobs import Job, JobStore
from ...jobs.results import export_parameters
from ...jobs.results import NonFiniteOutput
from ...specs import ModelSpec, model_input_shape, model_widths, sample_shape
from ...specs.cost import EVAL_BYTES_PER_ACTIVATION, model_cost
from ..deps import CurrentPrincipal, ModelCacheDep, SettingsDep, StoreDep
from ..errors import validation_error
from ..examples import PREDICT_EXAMPLES
from ..json_body import json_body, parse_json
from ..params import JobId, MetricsAfter
from ..schemas import MetricPointOut, MetricsPage, Prediction, PredictRequest

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])
NO_PARAMETERS = {404: {"description": "Unknown job"},
                 409: {"description": "The job has no parameters yet"}}
MODEL_ADAPTER = TypeAdapter(ModelSpec)
EXTENSIONS = {"json": "json", "safetensors": "safetensors", "npz": "npz"}


@router.get("/metrics", response_model=MetricsPage, summary="Training metrics",
            responses={404: {"description": "Unknown job"}})
def get_metrics(job_id: JobId, store: StoreDep, principal: CurrentPrincipal,
                after: MetricsAfter = 0,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000) -> MetricsPage:
    """Step points ({"loss"}) and epoch points (train/val loss and error) with seq > after."""
    points = store.get_metrics(job_id, after=after, limit=limit, tenant=principal.tenant_filter)
    return MetricsPage(points=[MetricPointOut.from_point(p) for p in points],
                       next_after=points[-1].seq if points else after)


@router.get("/parameters", response_class=Response, summary="Download trained parameters",
            responses={200: {"description": "json: {name: {shape, dtype, data}}; safetensors; "
                             "or npz (no pickle)",
                             "content": {"application/json": {}, "application/octet-stream": {}}},
                       **NO_PARAMETERS})
def get_parameters(job_id: JobId, store: StoreDep, principal: CurrentPrincipal,
                   fmt: Annotated[Literal["json", "safetensors", "npz"], Query(alias="format")]
                   = "json",
                   layout: Literal["needle", "torch"] = "needle") -> Response:
    """The model's state: needle layout (Linear weight (in, out)) or torch layout (loads into
    the equivalent torch.nn module with a strict load_state_dict)."""
    job, parameters = _trained(store, job_id, principal.tenant_filter)
    body, media_type = export_parameters(job, parameters, fmt, layout)
    filename = f"{job.id}-{layout}.{EXTENSIONS[fmt]}"
    return Response(content=body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/predict", response_model=Prediction, summary="Classify rows with a trained model",
             openapi_extra=json_body(PredictRequest, PREDICT_EXAMPLES),
             responses={200: {"description": "Outputs for every row", "headers": {
                            "X-Model-Cache": {"description": "`hit` when the built model came "
                                              "from the API's model cache, `miss` when it was "
                                              "built for this request",
                                              "schema": {"type": "string",
                                                         "enum": ["hit", "miss"]}}}},
                        **NO_PARAMETERS, 413: {"description": "Body too large"},
                        415: {"description": "The body is not application/json"},
                        422: {"description": "Wrong width or shape, non-finite input, or more "
                              "rows than the server's prediction budget"}})
async def predict(job_id: JobId, request: Request, response: Response, store: StoreDep,
                  settings: SettingsDep, cache: ModelCacheDep,
                  principal: CurrentPrincipal) -> Prediction:
    """Run the trained model in eval mode (BatchNorm uses its running statistics) on rows, or on
    images (N, C, H, W) for a model with an input_shape. Parsing, the model (built once per
    job, then cached) and the forward passes run off the event loop, in chunks sized to the
    server's prediction memory budget."""
    body = await parse_json(request, PredictRequest)
    prediction, cached = await run_in_threadpool(_predict, job_id, body.x, store, settings,
                                                 cache, principal.tenant_filter)
    response.headers["X-Model-Cache"] = "hit" if cached else "miss"
    return prediction


def _predict(job_id: str, rows: list, store: JobStore, settings, cache,
             tenant: str | None) -> tuple[Prediction, bool]:
    job = store.get_job(job_id, with_spec=False, tenant=tenant)  # NotFound for another tenant's
    if not job.has_parameters:
        raise HTTPException(409, f"job {job_id} has no parameters yet (status {job.status.value})")
    model_spec = MODEL_ADAPTER.validate_python(job.brief["model"])  # the brief keeps the model
    _check_input_shape(sample_shape(rows[0]), model_spec)
    _check_predict_size(len(rows), model_widths(model_spec)[1], settings)
    cost = model_cost(model_spec)
    x = np.asarray(rows, dtype=np.float32)  # (N, in_width) or (N, C, H, W)
    if not np.isfinite(x).all():
        raise validation_error([(("body", "x"), "values overflow float32", None)])
    trained, cached = cache.lookup(job.id, lambda: _parameters(store, job))
    chunk = max(1, settings.predict_memory_bytes // (cost.widest * EVAL_BYTES_PER_ACTIVATION))
    try:
        return Prediction(**trained.predict(x, chunk)), cached
    except NonFiniteOutput as exc:
        raise validation_error([(("body", "x", exc.rows[0]), str(exc), None)]) from None


def _check_predict_size(n_rows: int, classes: int, settings) -> None:
    if n_rows > settings.max_inline_rows:
        raise validation_error([(("body", "x"), f"{n_rows} rows; at most "
                                 f"{settings.max_inline_rows} per request", None)])
    if n_rows * classes > settings.max_predict_values:
        raise validation_error([(("body", "x"), f"{n_rows} rows x {classes} outputs is "
                                 f"{n_rows * classes} values, over this server's budget of "
                                 f"{settings.max_predict_values} per request (by "
                                 f"{n_rows * classes - settings.max_predict_values}); send at "
                                 f"most {settings.max_predict_values // classes} rows", None)])


def _parameters(store: JobStore, job: Job) -> bytes:
    parameters = store.get_parameters(job.id, tenant=job.tenant)
    if parameters is None:  # deleted between the two reads
        raise HTTPException(409, f"job {job.id} has no parameters")
    return parameters


def _check_input_shape(shape: tuple[int, ...], model) -> None:
    """Rows of the model's width, or images (of its input_shape, if it has one); else a 422."""
    in_width, _ = model_widths(model)
    input_shape = model_input_shape(model)
    if len(shape) == 3 and input_shape is not None and shape != input_shape:
        raise validation_error([(("body", "x", 0), f"x[0] is an image {list(shape)} but the model "
                                 f"takes images {list(input_shape)}", None)])
    if math.prod(shape) != in_width:
        raise validation_error([(("body", "x", 0), f"rows have {math.prod(shape)} features but "
                                 f"the model expects {in_width}", None)])


def _trained(store: JobStore, job_id: str, tenant: str | None) -> tuple[Job, bytes]:
    job = store.get_job(job_id, with_spec=False, tenant=tenant)  # NotFound for another tenant's
    parameters = store.get_parameters(job_id, tenant=tenant)
    if parameters is None:
        raise HTTPException(409, f"job {job_id} has no parameters yet (status {job.status.value})")
    return job, parameters
