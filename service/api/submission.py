"""Checks a job spec needs beyond pydantic: server caps, uploaded datasets, MNIST files; then the plan."""
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..jobs import Dataset, JobStore, NotFound, Status
from ..jobs.results import architecture_mismatch
from ..settings import Settings
from ..specs import (DatasetSource, DataValidation, FractionValidation, InlineSource, JobSpec,
                     MnistSource, count_parameters, is_regression, known_rows, model_widths,
                     planned_steps, validation_split_sizes)
from .auth import Principal
from .errors import validation_error

MNIST_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
               "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


@dataclass(frozen=True)
class Plan:
    """What the store needs to queue an accepted job."""

    spec: dict
    request_hash: str
    param_count: int
    epochs: int
    steps: int


def plan_submission(spec: JobSpec, settings: Settings, store: JobStore,
                    principal: Principal) -> Plan:
    """Accept the spec (or raise a 422 naming each bad field) and plan its steps. Datasets must
    belong to the principal's tenant (the job's), even for admins: the worker loads them so."""
    param_count = count_parameters(spec.model)
    issues = _cap_issues(spec, settings, param_count) + _priority_issues(spec, principal)
    sources = [(spec.data, ("body", "data"))]
    if isinstance(spec.data.validation, DataValidation):
        sources.append((spec.data.validation.data, ("body", "data", "validation", "data")))
    datasets = {}
    for source, loc in sources:
        issues += _source_issues(spec, source, loc, settings, store, datasets, principal.tenant)
    n_rows = known_rows(spec.data)
    if n_rows is None and spec.data.id in datasets:
        n_rows = datasets[spec.data.id].n_rows
        issues += _fraction_issues(spec, n_rows)
    if spec.training.init_from is not None:
        issues += init_from_issues(spec, store, principal.tenant)
    if issues:
        raise validation_error(issues)
    normalised = spec.model_dump(mode="json")
    epochs, steps = planned_steps(_training_rows(spec, n_rows or 0), spec.training)
    issues = _key_cost_issues(spec, principal, param_count, steps)
    if issues:
        raise validation_error(issues)
    return Plan(spec=normalised, request_hash=request_hash(spec), param_count=param_count,
                epochs=epochs, steps=steps)


def request_hash(spec: JobSpec) -> str:
    """Idempotency fingerprint: the same job spec, however it was spelled, hashes the same
    (defaults filled in, fields in model order; pydantic's serialiser is fast on big inline data)."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def _training_rows(spec: JobSpec, n_rows: int) -> int:
    if isinstance(spec.data.validation, FractionValidation):
        return validation_split_sizes(n_rows, spec.data.validation.fraction)[0]
    return n_rows


def _cap_issues(spec: JobSpec, settings: Settings, param_count: int) -> list:
    issues = []
    if param_count > settings.max_parameters:
        issues.append((("body", "model"), f"the model has {param_count} parameters; this server "
                       f"accepts at most {settings.max_parameters}", None))
    if spec.training.epochs > settings.max_epochs:
        issues.append((("body", "training", "epochs"), f"at most {settings.max_epochs} epochs "
                       "are allowed", spec.training.epochs))
    return issues


def estimated_training_flops(param_count: int, steps: int, batch_size: int) -> float:
    """A job's training cost for the keys' max job cost: the dense-layer rule of thumb of 6 FLOPs
    per parameter per row (forward 2, backward 4) for every row of every planned step. A hook:
    a per-layer estimate (evaluation included) replaces it where one exists."""
    return 6.0 * param_count * steps * batch_size


def _key_cost_issues(spec: JobSpec, principal: Principal, param_count: int, steps: int) -> list:
    limit = principal.limit("max_job_cost")
    cost = estimated_training_flops(param_count, steps, spec.training.batch_size)
    if limit is None or cost <= limit:
        return []
    return [(("body", "training"), f"the job's estimated training cost is {cost:.3g} FLOPs, "
             f"{cost / limit:.1f}x this API key's max job cost of {limit:.3g} FLOPs: plan fewer "
             "steps (epochs, stopping.max_steps), a smaller batch or a smaller model", None)]


def _priority_issues(spec: JobSpec, principal: Principal) -> list:
    highest = principal.limit("max_priority")
    if highest is not None and spec.priority > highest:
        return [(("body", "priority"), f"priority {spec.priority} is above this API key's "
                 f"maximum of {highest}", spec.priority)]
    return []


def _source_issues(spec: JobSpec, source, loc: tuple, settings: Settings, store: JobStore,
                   datasets: dict[str, Dataset], tenant: str) -> list:
    if isinstance(source, InlineSource) and len(source.x) > settings.max_inline_rows:
        return [((*loc, "x"), f"{len(source.x)} inline rows; at most {settings.max_inline_rows} "
                 "are allowed (upload larger data with POST /v1/datasets)", None)]
    if isinstance(source, MnistSource):
        return mnist_issues(source, loc, settings.mnist_dir)
    if isinstance(source, DatasetSource):
        return _dataset_issues(spec, source, loc, store, datasets, tenant)
    return []


def mnist_issues(source: MnistSource, loc: tuple, mnist_dir: Path | None) -> list:
    if mnist_dir is None:
        return [((*loc, "split"), "MNIST is not available on this server (NEEDLE_MNIST_DIR is "
                 "not set)", source.split)]
    missing = [name for name in MNIST_FILES[source.split] if not (mnist_dir / name).is_file()]
    if missing:
        return [((*loc, "split"), f"MNIST files missing on this server: {', '.join(missing)}",
                 source.split)]
    return []


def _dataset_issues(spec: JobSpec, source: DatasetSource, loc: tuple, store: JobStore,
                    datasets: dict[str, Dataset], tenant: str) -> list:
    try:
        dataset = datasets[source.id] = store.get_dataset(source.id, tenant=tenant)
    except NotFound:
        return [((*loc, "id"), f"dataset {source.id!r} does not exist", source.id)]
    in_width, out_width = model_widths(spec.model)
    issues = []
    if dataset.n_features != in_width:
        issues.append(((*loc, "id"), f"dataset {source.id!r} has {dataset.n_features} features "
                       f"but the model expects {in_width}", source.id))
    if is_regression(spec.training.loss):
        return issues  # the target width is checked when the worker loads the arrays
    if dataset.n_classes == 0:
        issues.append(((*loc, "id"), f"dataset {source.id!r} has float targets: use a regression "
                       "loss (training.loss mse, l1 or huber) or integer labels", source.id))
    elif dataset.n_classes > out_width:
        issues.append(((*loc, "id"), f"dataset {source.id!r} has labels up to "
                       f"{dataset.n_classes - 1} but the model has {out_width} outputs", source.id))
    return issues


def _fraction_issues(spec: JobSpec, n_rows: int) -> list:
    validation = spec.data.validation
    if isinstance(validation, FractionValidation) and \
            validation_split_sizes(n_rows, validation.fraction)[0] < 1:
        return [(("body", "data", "validation", "fraction"), f"holding out this fraction of "
                 f"{n_rows} rows leaves none to train on", validation.fraction)]
    return []


def init_from_issues(spec: JobSpec, store: JobStore, tenant: str) -> list:
    """training.init_from must name a succeeded job of the tenant (another tenant's job does
    not exist) whose parameters fit this model exactly."""
    loc = ("body", "training", "init_from", "job")
    source_id = spec.training.init_from.job
    try:
        source = store.get_job(source_id, with_spec=False, tenant=tenant)
    except NotFound:
        return [(loc, f"job {source_id!r} does not exist", source_id)]
    parameters = (store.get_parameters(source_id, tenant=tenant) if source.status is Status.succeeded
                  else None)
    if parameters is None:
        return [(loc, f"job {source_id!r} is {source.status.value}; only a succeeded job's "
                 "parameters can initialise another", source_id)]
    mismatch = architecture_mismatch(parameters, spec.model.model_dump(mode="json"))
    if mismatch:
        return [(loc, f"job {source_id!r} has another architecture: {mismatch}", source_id)]
    return []
