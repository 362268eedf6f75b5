"""The job spec a client submits: model, optimizer, data and training settings."""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from .data import (DataSpec, DataValidation, FractionValidation, InlineSource, LinearSource,
                   MnistSource, SpiralsSource, TeacherSource, float_target_rows, known_classes,
                   known_features, known_image_shape, known_rows, known_targets)
from .errors import Loc, spec_error
from .layers import _Spec
from .models import (ModelSpec, model_input_loc, model_input_shape, model_output_loc,
                     model_widths)
from .optimizers import OptimizerSpec, SGDOptimizer
from .planning import validation_split_sizes
from .training import (CLASSIFICATION_ONLY_METRICS, REGRESSION_ONLY_METRICS, VALIDATION_METRICS,
                       TrainingSpec, is_regression)

TagKey = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^:]+$")]
TagValue = Annotated[str, StringConstraints(max_length=200)]
MAX_TAGS = 50


class JobSpec(_Spec):
    """A complete training request; the stored form is model_dump(mode="json")."""

    name: str | None = Field(default=None, min_length=1, max_length=200,
                             description="free text; GET /v1/jobs?name_prefix= finds it")
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=MAX_TAGS,
                                         description="string -> string (keys without ':'); "
                                                     "GET /v1/jobs?tag=key:value filters on them")
    model: ModelSpec
    optimizer: OptimizerSpec = Field(default_factory=lambda: SGDOptimizer(type="sgd"))
    data: DataSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000,
                          description="Higher runs first; at most the API key's max priority "
                                      "(default 0); below 0 yields to other jobs.")

    @model_validator(mode="after")
    def _data_fits_model(self) -> "JobSpec":
        # locations carry pydantic's union tags, like its own errors: ("data", "spirals", ...)
        data_loc = ("data", self.data.type)
        issues = source_issues(self, self.data, data_loc)
        validation = self.data.validation
        if isinstance(validation, DataValidation):
            issues += source_issues(self, validation.data, (*data_loc, "validation", "data",
                                                            "data", validation.data.type))
        if isinstance(validation, FractionValidation):
            rows = known_rows(self.data)
            if rows is not None and validation_split_sizes(rows, validation.fraction)[0] < 1:
                issues.append(((*data_loc, "validation", "fraction", "fraction"),
                               f"holding out this fraction of {rows} rows leaves none to train on",
                               validation.fraction))
        issues += _training_issues(self)
        if issues:
            raise spec_error("JobSpec", issues)
        return self


def _training_issues(job: JobSpec) -> list[tuple[Loc, str, object]]:
    """Early stopping's metric must exist for this task and data; classifiers need 2 outputs."""
    issues = []
    regression = is_regression(job.training.loss)
    _, out_width = model_widths(job.model)
    if not regression and out_width < 2:
        issues.append((("model", job.model.type, *model_output_loc(job.model)),
                       f"the model outputs {out_width} logit(s); a classifier needs at least 2",
                       out_width))
    stopping = job.training.early_stopping
    if stopping is None:
        return issues
    loc = ("training", "early_stopping", "metric")
    if stopping.metric in VALIDATION_METRICS and job.data.validation is None:
        issues.append((loc, f"{stopping.metric} needs validation data: set data.validation",
                       stopping.metric))
    elif regression and stopping.metric in CLASSIFICATION_ONLY_METRICS:
        issues.append((loc, f"{stopping.metric} is a classification metric; this job regresses "
                       f"(training.loss {job.training.loss.type})", stopping.metric))
    elif not regression and stopping.metric in REGRESSION_ONLY_METRICS:
        issues.append((loc, f"{stopping.metric} is a regression metric; this job classifies",
                       stopping.metric))
    return issues


def source_issues(job: JobSpec, source, prefix: Loc) -> list[tuple[Loc, str, object]]:
    """Width, label-range and target mismatches between one data source and the job's model."""
    in_width, out_width = model_widths(job.model)
    issues = []
    features = known_features(source)
    images, input_shape = known_image_shape(source), model_input_shape(job.model)
    if images is not None and input_shape is not None and images != input_shape:
        issues.append((_feature_loc(job, source, prefix), f"the data's images are (C, H, W) = "
                       f"{images} but the model's input_shape is {list(input_shape)}", None))
    elif features is not None and features != in_width:
        issues.append((_feature_loc(job, source, prefix),
                       f"the data has {features} features but the model expects {in_width}",
                       features))
    if is_regression(job.training.loss):
        return issues + _regression_issues(job, source, prefix, out_width)
    floats = float_target_rows(source)
    if floats:
        issues.append(((*prefix, "y", floats[0]), "classification (training.loss cross_entropy) "
                       "needs integer class labels >= 0 in y", None))
        return issues
    if isinstance(source, LinearSource):
        issues.append(((*prefix, "type"), "linear data has float targets: use a regression "
                       "loss (training.loss mse, l1 or huber)", source.type))
        return issues
    classes = known_classes(source)
    if classes is not None and classes > out_width:
        issues.append((_class_loc(job, source, prefix, out_width),
                       f"labels must lie in [0, {out_width}) (the model has {out_width} outputs)"
                       f" but the data has {classes} classes", classes))
    return issues


def _regression_issues(job: JobSpec, source, prefix: Loc, out_width: int) -> list:
    """Regression needs float targets, K per row, and a model with K outputs."""
    if isinstance(source, (SpiralsSource, TeacherSource, MnistSource)):
        return [((*prefix, "type"), f"{source.type} data has class labels: regression "
                 f"(training.loss {job.training.loss.type}) needs float targets", source.type)]
    targets, known = known_targets(source)
    width = targets or 1  # a (N,) target vector is one output
    if known and width != out_width:
        return [(("model", job.model.type, *model_output_loc(job.model)),
                 f"the data has {width} regression target(s) per row but the model outputs "
                 f"{out_width}", out_width)]
    return []


def _feature_loc(job: JobSpec, source, prefix: Loc) -> Loc:
    if isinstance(source, InlineSource):
        return (*prefix, "x", 0)
    if isinstance(source, (TeacherSource, LinearSource)):
        return (*prefix, "n_features")
    return ("model", job.model.type, *model_input_loc(job.model))


def _class_loc(job: JobSpec, source, prefix: Loc, out_width: int) -> Loc:
    if isinstance(source, InlineSource):
        first_bad = next(i for i, label in enumerate(source.y) if label >= out_width)
        return (*prefix, "y", first_bad)
    if isinstance(source, (SpiralsSource, TeacherSource)):
        return (*prefix, "n_classes")
    return ("model", job.model.type, *model_output_loc(job.model))
