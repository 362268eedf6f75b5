"""What a job produces: metrics while it runs, then parameters, predictions and evaluations."""
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from ...jobs import Job, JobStore
from ...jobs.results import export_parameters, model_extras
from ..deps import CurrentPrincipal, ModelCacheDep, SettingsDep, StoreDep, inference_slot
from ..evaluation import evaluate_job
from ..examples import EVALUATE_EXAMPLES, PREDICT_EXAMPLES
from ..params import JobId, MetricsAfter
from ..prediction import predict_job
from ..schemas import (EvaluateRequest, Evaluation, MetricPointOut, MetricsPage, Prediction,
                       PredictRequest, RegressionPrediction)

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])
NO_PARAMETERS = {404: {"description": "Unknown job"},
                 409: {"description": "The job has no parameters yet"}}
EXTENSIONS = {"json": "json", "safetensors": "safetensors", "npz": "npz"}
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
             responses={200: {"description": "Outputs for every row", "headers": {
                            "X-Model-Cache": {"description": "`hit` when the built model came "
                                              "from the API's model cache, `miss` when it was "
                                              "built for this request",
                                              "schema": {"type": "string", "enum": ["hit", "miss"]}}}},
                        **NO_PARAMETERS, 415: {"description": "Neither JSON nor an .npz body"},
                        422: {"description": "Wrong width or non-finite input, or a request over "
                              "the server's inference budget (one row's forward pass or the answer)"}})
async def predict(job_id: JobId, request: Request, store: StoreDep, settings: SettingsDep,
                  cache: ModelCacheDep, principal: CurrentPrincipal) -> Response:
    """Run the trained model in eval mode (BatchNorm uses its running statistics) on raw rows:
    the model's own preprocessing (data.preprocess, e.g. mnist's 1/255) is applied first.
    Classifiers return logits, probabilities and classes; regression models `outputs`. The body
    is JSON {"x": [[...], ...]} or an .npz archive with `x` (Content-Type application/octet-stream).
    Parsing, the model (built once per job, then cached) and the forward passes, in chunks sized
    to the server's inference budget, run off the event loop."""
    # the job first: an unknown (or another tenant's) job is a 404 whatever the body
    job = await run_in_threadpool(_finished, store, job_id, principal.tenant_filter)
    body = await request.body()
    async with inference_slot(request):
        answer, cached = await run_in_threadpool(predict_job, job, body,
                                                 request.headers.get("content-type", ""),
                                                 store, settings, cache)
    return Response(answer, media_type="application/json",
                    headers={"X-Model-Cache": "hit" if cached else "miss"})


@router.post("/evaluate", response_model=Evaluation, summary="Evaluate a trained model on labelled data",
             openapi_extra=_body_doc(EvaluateRequest, EVALUATE_EXAMPLES,
                                     ".npz archive (np.savez) with x (N, F) and y"),
             responses={**NO_PARAMETERS, 415: {"description": "Neither JSON nor an .npz body"},
                        422: {"description": "Data that does not fit the model, or a request "
                              "over the server's inference budget"}})
async def evaluate(job_id: JobId, request: Request, store: StoreDep, settings: SettingsDep,
                   cache: ModelCacheDep, principal: CurrentPrincipal) -> Evaluation:
    """Loss and error, accuracy, per-class precision/recall and the confusion matrix
    (classification) or loss, RMSE, MAE and R² (regression) of the trained model, in eval mode
    with its preprocessing, streamed through the data in chunks sized to the server's inference
    budget. The body is JSON {"data": <a data source as in job specs: dataset id, inline, a
    generator, mnist>} or an .npz archive with `x` and `y`."""
    job = await run_in_threadpool(_finished, store, job_id, principal.tenant_filter)  # 404 / 409 first
    body = await request.body()
    async with inference_slot(request):
        return Evaluation(**await run_in_threadpool(evaluate_job, store, settings, cache, job, body,
                                                    request.headers.get("content-type", "")))


def _finished(store: JobStore, job_id: str, tenant: str | None) -> Job:
    """The job, if it has parameters (NotFound for another tenant's; a 409 before it ends)."""
    job = store.get_job(job_id, with_spec=False, tenant=tenant)
    if not job.has_parameters:
        raise HTTPException(409, f"job {job_id} has no parameters yet (status {job.status.value})")
    return job


def _trained(store: JobStore, job_id: str, tenant: str | None) -> tuple[Job, bytes]:
    job = store.get_job(job_id, with_spec=False, tenant=tenant)  # NotFound for another tenant's
    parameters = store.get_parameters(job_id, tenant=tenant)
    if parameters is None:
        raise HTTPException(409, f"job {job_id} has no parameters yet (status {job.status.value})")
    return job, parameters
