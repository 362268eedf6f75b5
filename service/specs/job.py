"""The job spec a client submits: model, optimizer, data and training settings."""
from __future__ import annotations

from pydantic import Field, model_validator

from .data import (DataSpec, DataValidation, FractionValidation, InlineSource,
                   SpiralsSource, TeacherSource, known_classes, known_features, known_image_shape,
                   known_rows)
from .errors import Loc, spec_error
from .layers import _Spec
from .models import (ModelSpec, model_input_loc, model_input_shape, model_output_loc,
                     model_widths)
from .optimizers import OptimizerSpec, SGDOptimizer
from .planning import validation_split_sizes
from .training import TrainingSpec


class JobSpec(_Spec):
    """A complete training request; the stored form is model_dump(mode="json")."""

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
        if issues:
            raise spec_error("JobSpec", issues)
        return self


def source_issues(job: JobSpec, source, prefix: Loc) -> list[tuple[Loc, str, object]]:
    """Width and label-range mismatches between one data source and the job's model."""
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
    classes = known_classes(source)
    if classes is not None and classes > out_width:
        issues.append((_class_loc(job, source, prefix, out_width),
                       f"labels must lie in [0, {out_width}) (the model has {out_width} outputs)"
                       f" but the data has {classes} classes", classes))
    return issues


def _feature_loc(job: JobSpec, source, prefix: Loc) -> Loc:
    if isinstance(source, InlineSource):
        return (*prefix, "x", 0)
    if isinstance(source, TeacherSource):
        return (*prefix, "n_features")
    return ("model", job.model.type, *model_input_loc(job.model))


def _class_loc(job: JobSpec, source, prefix: Loc, out_width: int) -> Loc:
    if isinstance(source, InlineSource):
        first_bad = next(i for i, label in enumerate(source.y) if label >= out_width)
        return (*prefix, "y", first_bad)
    if isinstance(source, (SpiralsSource, TeacherSource)):
        return (*prefix, "n_classes")
    return ("model", job.model.type, *model_output_loc(job.model))
