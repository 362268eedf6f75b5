"""POST /v1/jobs/{id}/evaluate, all in a worker thread: parse the body, load the data source,
run the cached model in chunks sized to the inference budget."""
from fastapi import HTTPException
from pydantic import ValidationError

from ..jobs import Job, JobStore, NotFound
from ..jobs.model_cache import ModelCache
from ..jobs.results import TrainingError, load_source
from ..settings import Settings
from ..specs import (DatasetSource, InlineSource, MnistSource, is_regression, known_features,
                     model_widths, parse_model)
from ..specs.cost import model_cost
from .errors import validation_error
from .inference_budget import check_answer, check_json_body, chunk_rows
from .prediction import NPZ_TYPES, stored_parameters
from .schemas import EvaluateRequest
from .submission import mnist_issues
from .uploads import BadUpload, arrays_from_npz


def evaluate_job(store: JobStore, settings: Settings, cache: ModelCache, job: Job, body: bytes,
                 content_type: str) -> dict:
    """Metrics of a trained job on the body's data source spec or .npz arrays; 409/415/422 as
    HTTP errors. Datasets must belong to the job's tenant."""
    spec = job.brief or job.spec
    model = parse_model(spec["model"])
    rows_per_chunk = chunk_rows(model_cost(model), settings, ("body",))
    in_width, classes = model_widths(model)
    loss = spec["training"].get("loss")
    if not is_regression(loss):
        # the confusion matrix (classes x classes counts) is part of the answer
        check_answer(classes * classes + 2 * classes, f"a confusion matrix of {classes} classes",
                     settings, ("body",))
    source, arrays = _data(body, content_type, settings)
    if source is not None:
        _check_source(job, source, in_width, settings, store)

    def fetch(dataset_id: str) -> bytes:
        try:
            return store.get_dataset_blob(dataset_id, tenant=job.tenant)
        except NotFound:
            raise TrainingError(f"dataset {dataset_id!r} does not exist") from None
    loc = ("body", "data") if source is not None else ("body",)
    try:
        if arrays is None:
            arrays = load_source(source.model_dump(mode="json"), mnist_dir=settings.mnist_dir,
                                 fetch_dataset=fetch)
        trained, _ = cache.lookup(job, lambda: stored_parameters(store, job))
        return trained.evaluate([arrays], loss, rows_per_chunk)
    except (TrainingError, ValueError) as exc:
        raise validation_error([(loc, str(exc), None)]) from None


def _data(body: bytes, content_type: str, settings: Settings):
    """(source spec, None) from a JSON body or (None, (x, y)) from an .npz body; 415/422."""
    if content_type.startswith("application/json"):
        check_json_body(body, settings)
        try:
            return EvaluateRequest.model_validate_json(body).data, None
        except ValidationError as exc:
            raise validation_error([(("body", *e["loc"]), e["msg"], None) for e in exc.errors()]) from None
    if content_type.startswith(NPZ_TYPES):
        try:
            return None, arrays_from_npz(body, settings.max_upload_bytes)
        except BadUpload as exc:
            raise validation_error([(("body",), str(exc), None)]) from None
    raise HTTPException(415, "send JSON {\"data\": {...}} or an .npz archive with x and y")


def _check_source(job, source, in_width: int, settings: Settings, store: JobStore) -> None:
    """Bounds and widths that follow from the source spec alone (before loading anything)."""
    loc = ("body", "data")
    features = known_features(source)
    if features is not None and features != in_width:
        raise validation_error([(loc, f"the data has {features} features but the model expects "
                                 f"{in_width}", features)])
    if isinstance(source, InlineSource) and len(source.x) > settings.max_inline_rows:
        raise validation_error([((*loc, "x"), f"at most {settings.max_inline_rows} inline rows; "
                                 "evaluate larger data by dataset id or as an .npz body", None)])
    if isinstance(source, MnistSource):
        issues = mnist_issues(source, loc, settings.mnist_dir)
        if issues:
            raise validation_error(issues)
    if isinstance(source, DatasetSource):
        try:
            store.get_dataset(source.id, tenant=job.tenant)
        except NotFound:
            raise validation_error([((*loc, "id"), f"dataset {source.id!r} does not exist",
                                     source.id)]) from None
