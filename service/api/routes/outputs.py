"""What a job produces: metrics while it runs, then parameters and predictions."""
import math
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import TypeAdapter

from ...jobs import Job, JobStore
from ...jobs.results import export_parameters
from ...jobs.results import NonFiniteOutput
from ...jobs.results import predict as run_model
from ...specs import ModelSpec, model_input_shape, model_widths, sample_shape
from ..deps import CurrentPrincipal, SettingsDep, StoreDep
from ..errors import validation_error
from ..examples import PREDICT_EXAMPLES
from ..schemas import MetricPointOut, MetricsPage, Prediction, PredictRequest

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])
NO_PARAMETERS = {404: {"description": "Unknown job"},
                 409: {"description": "The job has no parameters yet"}}
MODEL_ADAPTER = TypeAdapter(ModelSpec)
EXTENSIONS = {"json": "json", "safetensors": "safetensors", "npz": "npz"}


@router.get("/metrics", response_model=MetricsPage, summary="Training metrics",
            responses={404: {"description": "Unknown job"}})
def get_metrics(job_id: str, store: StoreDep, principal: CurrentPrincipal,
                after: Annotated[int, Query(ge=0)] = 0,
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
def get_parameters(job_id: str, store: StoreDep, principal: CurrentPrincipal,
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
             responses={**NO_PARAMETERS, 422: {"description": "Wrong width or non-finite input"}})
def predict(job_id: str, request: Annotated[PredictRequest, Body(openapi_examples=PREDICT_EXAMPLES)],
            store: StoreDep, settings: SettingsDep, principal: CurrentPrincipal) -> Prediction:
    """Run the trained model in eval mode (BatchNorm uses its running statistics)."""
    job, parameters = _trained(store, job_id, principal.tenant_filter)
    model_spec = (job.brief or job.spec)["model"]  # brief: the model part is never elided
    model = MODEL_ADAPTER.validate_python(model_spec)
    if len(request.x) > settings.max_inline_rows:
        raise validation_error([(("body", "x"), f"at most {settings.max_inline_rows} rows per "
                                 "request", None)])
    _check_input_shape(sample_shape(request.x[0]), model)
    x = np.asarray(request.x, dtype=np.float32)  # (N, in_width) or (N, C, H, W)
    if not np.isfinite(x).all():
        raise validation_error([(("body", "x"), "values overflow float32", None)])
    try:
        return Prediction(**run_model(job, parameters, x))
    except NonFiniteOutput as exc:
        raise validation_error([(("body", "x", exc.rows[0]), str(exc), None)]) from None


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
