"""What a job produces: metrics while it runs, then parameters, predictions and evaluations."""
import math
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from ...jobs import Job, JobStore
from ...jobs.results import export_parameters, model_extras
from ...jobs.results import NonFiniteOutput
from ...jobs.results import predict as run_model
from ...specs import ModelSpec, model_input_shape, model_widths, sample_shape
from ..deps import CurrentPrincipal, SettingsDep, StoreDep
from ..errors import validation_error
from ..evaluation import evaluate_job
from ..examples import EVALUATE_EXAMPLES, PREDICT_EXAMPLES
from ..params import JobId, MetricsAfter
from ..schemas import (EvaluateRequest, Evaluation, MetricPointOut, MetricsPage, Prediction,
                       PredictRequest, RegressionPrediction)
from ..npz_reader import BadArchive, read_npz_arrays
from ..uploads import BadUpload, arrays_from_npz

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])
NO_PARAMETERS = {404: {"description": "Unknown job"},
                 409: {"description": "The job has no parameters yet"}}
MODEL_ADAPTER = TypeAdapter(ModelSpec)
EXTENSIONS = {"json": "json", "safetensors": "safetensors", "npz": "npz"}
NPZ_TYPES = ("application/octet-stream", "application/x-npz", "application/zip")
NPZ_SCHEMA = {"type": "string", "format": "binary"}


def _body_doc(schema_model, examples: dict, npz: str) -> dict:
    """openapi_extra for a body that is JSON (schema_model) or an .npz archive."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_model.__name__}"},
                             "examples": examples},
        "application/octet-stream": {"schema": {**NPZ_SCHEMA, "description": npz}}}}}


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
    # safetensors also carries it in its metadata; json and npz files hold only the arrays
    return Response(content=body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "X-Needle-Preprocess": model_extras(parameters)})


@router.post("/predict", response_model=Prediction | RegressionPrediction,
             summary="Predict with a trained model",
             openapi_extra=_body_doc(PredictRequest, PREDICT_EXAMPLES,
                                     ".npz archive (np.savez) with x (N, F) or (N, C, H, W)"),
             responses={**NO_PARAMETERS, 415: {"description": "Neither JSON nor an .npz body"},
                        422: {"description": "Wrong width or non-finite input"}})
async def predict(job_id: JobId, request: Request, store: StoreDep, settings: SettingsDep,
                  principal: CurrentPrincipal) -> Prediction | RegressionPrediction:
    """Run the trained model in eval mode (BatchNorm uses its running statistics) on raw rows:
    the model's own preprocessing (data.preprocess, e.g. mnist's 1/255) is applied first.
    Classifiers return logits, probabilities and classes; regression models `outputs`. The body
    is JSON {"x": [[...], ...]} or an .npz archive with `x` (Content-Type application/octet-stream)."""
    # the job first: an unknown (or another tenant's) job is a 404 whatever the body
    job, parameters = await run_in_threadpool(_trained, store, job_id, principal.tenant_filter)
    x = await _predict_inputs(request, settings.max_body_bytes)
    model_spec = (job.brief or job.spec)["model"]  # brief: the model part is never elided
    model = MODEL_ADAPTER.validate_python(model_spec)
    if len(x) > settings.max_inline_rows:
        raise validation_error([(("body", "x"), f"at most {settings.max_inline_rows} rows per "
                                 "request", None)])
    _check_input_shape(tuple(x.shape[1:]), model)
    try:
        out = await run_in_threadpool(run_model, job, parameters, x)
    except NonFiniteOutput as exc:
        raise validation_error([(("body", "x", exc.rows[0]), str(exc), None)]) from None
    return RegressionPrediction(**out) if "outputs" in out else Prediction(**out)


async def _predict_inputs(request: Request, max_inflated_bytes: int) -> np.ndarray:
    """x (N, F) rows or (N, C, H, W) images, float32, from a JSON or .npz body; 415/422 otherwise."""
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if content_type.startswith("application/json"):
        try:
            payload = PredictRequest.model_validate_json(body)
        except ValidationError as exc:
            raise validation_error([(("body", *e["loc"]), e["msg"], None) for e in exc.errors()]) from None
        x = np.asarray(payload.x, dtype=np.float32)  # (N, F) or (N, C, H, W)
    elif content_type.startswith(NPZ_TYPES):
        try:
            x = await run_in_threadpool(_npz_x, body, max_inflated_bytes)
        except BadUpload as exc:
            raise validation_error([(("body",), str(exc), None)]) from None
    else:
        raise HTTPException(415, "send JSON {\"x\": [[...]]} or an .npz archive (application/octet-stream)")
    if x.ndim not in (2, 4) or 0 in x.shape:
        raise validation_error([(("body", "x"), f"x must be (N, F) or (N, C, H, W) with N >= 1, "
                                 f"got {x.shape}", None)])
    if not np.isfinite(x).all():
        raise validation_error([(("body", "x"), "values are NaN, infinite or overflow float32", None)])
    return x


def _npz_x(body: bytes, max_inflated_bytes: int) -> np.ndarray:
    """The numeric `x` of an .npz body as float32 (headers checked before inflating, never
    unpickled, at most max_inflated_bytes inflated: a zip bomb is a 422)."""
    try:
        (x,) = read_npz_arrays(body, max_inflated_bytes, members=("x",))
    except BadArchive as exc:
        raise BadUpload(str(exc)) from None
    if x.dtype.kind not in "fiu":
        raise BadUpload(f"x must be numeric; got dtype {x.dtype}")
    with np.errstate(over="ignore"):
        return x.astype(np.float32)


@router.post("/evaluate", response_model=Evaluation, summary="Evaluate a trained model on labelled data",
             openapi_extra=_body_doc(EvaluateRequest, EVALUATE_EXAMPLES,
                                     ".npz archive (np.savez) with x (N, F) and y"),
             responses={**NO_PARAMETERS, 415: {"description": "Neither JSON nor an .npz body"},
                        422: {"description": "Data that does not fit the model"}})
async def evaluate(job_id: JobId, request: Request, store: StoreDep, settings: SettingsDep,
                   principal: CurrentPrincipal) -> Evaluation:
    """Loss and error, accuracy, per-class precision/recall and the confusion matrix
    (classification) or loss, RMSE, MAE and R² (regression) of the trained model, in eval mode
    with its preprocessing, streamed through the data in batches. The body is JSON
    {"data": <a data source as in job specs: dataset id, inline, a generator, mnist>} or an
    .npz archive with `x` and `y`."""
    await run_in_threadpool(_trained, store, job_id, principal.tenant_filter)  # 404 / 409 first
    content_type = request.headers.get("content-type", "")
    body = await request.body()
    if content_type.startswith("application/json"):
        try:
            source = EvaluateRequest.model_validate_json(body).data
        except ValidationError as exc:
            raise validation_error([(("body", *e["loc"]), e["msg"], None) for e in exc.errors()]) from None
        return Evaluation(**await run_in_threadpool(evaluate_job, store, settings, job_id, principal.tenant_filter,
                                                    source=source))
    if content_type.startswith(NPZ_TYPES):
        return Evaluation(**await run_in_threadpool(evaluate_job, store, settings, job_id, principal.tenant_filter,
                                                    npz=body))
    raise HTTPException(415, "send JSON {\"data\": {...}} or an .npz archive with x and y")


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
