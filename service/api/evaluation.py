"""POST /v1/jobs/{id}/evaluate, off the event loop: load the data source, run the stored model."""
from fastapi import HTTPException

from ..jobs import JobStore, NotFound
from ..jobs.results import TrainingError, evaluate
from ..settings import Settings
from ..specs import DatasetSource, InlineSource, MnistSource, known_features, model_widths
from ..specs.models import ModelSpec
from .errors import validation_error
from .submission import mnist_issues
from .uploads import BadUpload, arrays_from_npz

from pydantic import TypeAdapter

MODEL_ADAPTER = TypeAdapter(ModelSpec)


def evaluate_job(store: JobStore, settings: Settings, job_id: str, tenant: str | None, *, source=None,
                 npz: bytes | None = None) -> dict:
    """Metrics of a trained job on a data source spec or an .npz body; 404/409/422 as HTTP errors.
    Another tenant's job is unknown (404); datasets must belong to the job's tenant."""
    job = store.get_job(job_id, with_spec=False, tenant=tenant)
    parameters = store.get_parameters(job_id, tenant=tenant)
    if parameters is None:
        raise HTTPException(409, f"job {job_id} has no parameters yet (status {job.status.value})")
    arrays = None
    if npz is not None:
        try:
            arrays = arrays_from_npz(npz)
        except BadUpload as exc:
            raise validation_error([(("body",), str(exc), None)]) from None
    else:
        _check_source(job, source, settings, store)

    def fetch(dataset_id: str) -> bytes:
        try:
            return store.get_dataset_blob(dataset_id, tenant=job.tenant)
        except NotFound:
            raise TrainingError(f"dataset {dataset_id!r} does not exist") from None
    try:
        return evaluate(job, parameters, None if source is None else source.model_dump(mode="json"),
                        arrays=arrays, mnist_dir=settings.mnist_dir, fetch_dataset=fetch)
    except (TrainingError, ValueError) as exc:
        raise validation_error([(("body", "data") if npz is None else ("body",), str(exc), None)]) from None


def _check_source(job, source, settings: Settings, store: JobStore) -> None:
    """Bounds and widths that follow from the source spec alone (before loading anything)."""
    loc = ("body", "data")
    in_width, _ = model_widths(MODEL_ADAPTER.validate_python((job.brief or job.spec)["model"]))
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
