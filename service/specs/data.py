"""Data specs: where the training (and validation) rows come from (discriminated on "type")."""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PlainValidator, TypeAdapter, WithJsonSchema, model_validator

from .errors import spec_error
from .layers import _Spec
from .training import SEED_LIMIT

FLOAT32_MAX = 3.4028234663852886e38
# strict: a JSON string or boolean is a client bug, not a number; values must survive float32
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX,
                                     le=FLOAT32_MAX)]
Label = Annotated[int, Field(strict=True, ge=0, lt=2**31)]
# a class label (classification), or a float target / row of K targets (regression); which one a
# job needs follows from training.loss and is checked by JobSpec
Target = Union[Label, FiniteFloat, Annotated[list[FiniteFloat], Field(min_length=1)]]
MAX_GENERATED_ROWS = 1_000_000
MAX_GENERATED_VALUES = 50_000_000  # 200 MB of float32 per generated array
MNIST_ROWS = {"train": 60_000, "test": 10_000}
MNIST_FEATURES = 784
MNIST_SHAPE = (1, 28, 28)
MNIST_CLASSES = 10


def _row_kind(row: Any) -> str:
    """A row is "image" (C, H, W nested lists) when its first entry is itself a list."""
    return "image" if isinstance(row, list) and row and isinstance(row[0], list) else "flat"


def _nonempty(item):
    return Annotated[list[item], Field(min_length=1)]


FLAT_ROWS = TypeAdapter(_nonempty(_nonempty(FiniteFloat)))  # (N, F)
IMAGE_ROWS = TypeAdapter(_nonempty(_nonempty(_nonempty(_nonempty(FiniteFloat)))))  # (N, C, H, W)


def _validate_rows(value: Any) -> list:
    """(N, F) rows or (N, C, H, W) images, told apart by the first row; error locations are
    plain indices into x either way."""
    if not isinstance(value, list) or not value:
        return FLAT_ROWS.validate_python(value)  # pydantic's own error
    kind = _row_kind(value[0])
    mixed = [i for i, row in enumerate(value) if _row_kind(row) != kind][:5]
    if mixed:
        raise spec_error("Rows", [((i,), f"row {i} is {'not ' if kind == 'image' else ''}an image "
                                  f"but row 0 is {'' if kind == 'image' else 'not '}one", None)
                                  for i in mixed])
    return (IMAGE_ROWS if kind == "image" else FLAT_ROWS).validate_python(value)


Rows = Annotated[list, PlainValidator(_validate_rows), WithJsonSchema({
    "description": "(N, F) feature rows, or (N, C, H, W) images as nested lists",
    "anyOf": [FLAT_ROWS.json_schema(), IMAGE_ROWS.json_schema()]})]


def sample_shape(row: list) -> tuple[int, ...]:
    """(F,) of a flat row, (C, H, W) of an image row (from its first channel and line)."""
    if _row_kind(row) == "flat":
        return (len(row),)
    return (len(row), len(row[0]), len(row[0][0]))


def _row_issue(i: int, row: list, shape: tuple[int, ...]):
    """Where row i differs from the shape of row 0 (None when it matches)."""
    got = sample_shape(row)
    if len(got) != len(shape):
        return ("x", i), f"row {i} is {_kind_name(got)} but row 0 is {_kind_name(shape)}"
    if len(shape) == 1:
        return None if got == shape else (("x", i), f"row {i} has {got[0]} features; row 0 has "
                                                     f"{shape[0]}")
    if len(row) != shape[0]:
        return ("x", i), f"row {i} has {len(row)} channels; row 0 has {shape[0]}"
    for c, channel in enumerate(row):
        if len(channel) != shape[1]:
            return ("x", i, c), f"row {i} channel {c} has {len(channel)} lines; row 0 " \
                                         f"has {shape[1]}"
        for h, line in enumerate(channel):
            if len(line) != shape[2]:
                return ("x", i, c, h), f"row {i} channel {c} line {h} has {len(line)} " \
                                                f"values; row 0 has {shape[2]}"
    return None


def _kind_name(shape: tuple[int, ...]) -> str:
    return f"an image {shape}" if len(shape) == 3 else f"a row of {shape[0]} features"


class InlineSource(_Spec):
    """Rows sent in the request: x (N, F) floats or (N, C, H, W) images; y (N,) integer labels
    (classification) or float targets (N,) or (N, K) (regression)."""

    type: Literal["inline"]
    x: Rows
    y: list[Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _rectangular(self) -> "InlineSource":
        issues = table_issues(self.x, self.y)
        if issues:
            raise spec_error("InlineSource", issues)
        return self


def table_issues(x: list[list], y: list | None = None) -> list:
    """Rows of x shaped unlike row 0 (first five), ragged or mixed scalar/row targets and an x/y
    length mismatch, as (loc, message, input)."""
    shape = sample_shape(x[0])
    issues = []
    for i, row in enumerate(x):
        issue = _row_issue(i, row, shape)
        if issue is not None:
            issues.append((*issue, None))
            if len(issues) == 5:
                break
    if y is not None and len(y) != len(x):
        issues.append((("y",), f"y has {len(y)} labels but x has {len(x)} rows", None))
    if y is not None:
        targets = target_width(y)
        issues += [(("y", i), f"row {i} of y has {len(row) if isinstance(row, list) else 'a scalar'}"
                    f" target(s); row 0 has {targets or 'a scalar'}", None)
                   for i, row in enumerate(y)
                   if (len(row) if isinstance(row, list) else None) != targets][:5]
    return issues


def target_width(y: list) -> int | None:
    """K of a (N, K) target matrix; None when y is a vector."""
    return len(y[0]) if isinstance(y[0], list) else None


class DatasetSource(_Spec):
    """A dataset uploaded with POST /v1/datasets."""

    type: Literal["dataset"]
    id: str = Field(min_length=1, max_length=200)


class SpiralsSource(_Spec):
    """Synthetic interleaved spirals: 2 features, n_classes arms."""

    type: Literal["spirals"]
    n_samples: int = Field(default=1000, ge=1, le=MAX_GENERATED_ROWS)
    n_classes: int = Field(default=3, ge=2, le=100)
    noise: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)


class TeacherSource(_Spec):
    """Gaussian inputs labelled by argmax of a fixed random 2-layer ReLU teacher network."""

    type: Literal["teacher"]
    n_samples: int = Field(default=1000, ge=1, le=MAX_GENERATED_ROWS)
    n_features: int = Field(default=20, ge=1, le=10_000)
    n_classes: int = Field(default=4, ge=2, le=1000)
    hidden_dim: int = Field(default=32, ge=1, le=10_000)
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)

    @model_validator(mode="after")
    def _bounded_size(self) -> "TeacherSource":
        values = self.n_samples * max(self.n_features, self.hidden_dim)
        if values > MAX_GENERATED_VALUES:
            raise spec_error("TeacherSource", [(("n_samples",), f"n_samples x max(n_features, "
                             f"hidden_dim) is {values}; at most {MAX_GENERATED_VALUES} values "
                             "can be generated", self.n_samples)])
        return self


class LinearSource(_Spec):
    """Regression: Gaussian x (N, F), y = x W + b + noise with a fixed random W (F, K) and b (K,)
    per seed, so a held-out fraction of the same task has a known best RMSE (= noise)."""

    type: Literal["linear"]
    n_samples: int = Field(default=1000, ge=1, le=MAX_GENERATED_ROWS)
    n_features: int = Field(default=10, ge=1, le=10_000)
    n_targets: int = Field(default=1, ge=1, le=1000)
    noise: float = Field(default=0.1, ge=0, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)

    @model_validator(mode="after")
    def _bounded_size(self) -> "LinearSource":
        values = self.n_samples * max(self.n_features, self.n_targets)
        if values > MAX_GENERATED_VALUES:
            raise spec_error("LinearSource", [(("n_samples",), f"n_samples x max(n_features, "
                             f"n_targets) is {values}; at most {MAX_GENERATED_VALUES} values "
                             "can be generated", self.n_samples)])
        return self


class MnistSource(_Spec):
    """MNIST from the IDX files in Settings.mnist_dir: (1, 28, 28) images of raw pixel values
    0..255 (784 features for models of feature rows), 10 classes; data.preprocess defaults to
    scale 1/255 for it."""

    type: Literal["mnist"]
    split: Literal["train", "test"] = "train"
    limit: int | None = Field(default=None, ge=1)


SourceSpec = Annotated[
    Union[InlineSource, DatasetSource, SpiralsSource, TeacherSource, LinearSource, MnistSource],
    Field(discriminator="type"),
]


class FractionValidation(_Spec):
    """Hold out a random fraction of the training rows."""

    type: Literal["fraction"]
    fraction: float = Field(gt=0, lt=1)


class DataValidation(_Spec):
    """Validate on separate data (which itself has no validation)."""

    type: Literal["data"]
    data: SourceSpec


ValidationSpec = Annotated[Union[FractionValidation, DataValidation], Field(discriminator="type")]


class NoPreprocess(_Spec):
    """Feed x to the model as given."""

    type: Literal["none"]


class StandardizePreprocess(_Spec):
    """(x - mean) / std per feature, fitted on the training split only (std 0 -> 1)."""

    type: Literal["standardize"]


class ScalePreprocess(_Spec):
    """x * factor (e.g. 1/255 for 8-bit pixels)."""

    type: Literal["scale"]
    factor: float = Field(gt=0, allow_inf_nan=False)


PreprocessSpec = Annotated[Union[NoPreprocess, StandardizePreprocess, ScalePreprocess],
                           Field(discriminator="type")]
PREPROCESS_DESCRIPTION = ("applied to x before the model, stored with the trained parameters and "
                          "applied again by /predict and /evaluate (raw inputs give the right "
                          "answer); default: none, except mnist: scale 1/255")


class _Data(_Spec):
    """What every top-level data source adds: validation rows and input preprocessing."""

    validation: ValidationSpec | None = None
    preprocess: PreprocessSpec = Field(default_factory=lambda: NoPreprocess(type="none"),
                                       description=PREPROCESS_DESCRIPTION)


class InlineData(InlineSource, _Data):
    """Inline rows, with optional validation."""


class DatasetData(DatasetSource, _Data):
    """An uploaded dataset, with optional validation."""


class SpiralsData(SpiralsSource, _Data):
    """Spirals, with optional validation."""


class TeacherData(TeacherSource, _Data):
    """Teacher-network data, with optional validation."""


class LinearData(LinearSource, _Data):
    """Linear regression data, with optional validation and preprocessing."""


class MnistData(MnistSource, _Data):
    """MNIST, with optional validation; preprocess defaults to scale 1/255."""

    preprocess: PreprocessSpec = Field(
        default_factory=lambda: ScalePreprocess(type="scale", factor=1 / 255),
        description=PREPROCESS_DESCRIPTION)


DataSpec = Annotated[
    Union[InlineData, DatasetData, SpiralsData, TeacherData, LinearData, MnistData],
    Field(discriminator="type"),
]


def known_rows(source: _Spec) -> int | None:
    """Row count when it follows from the spec alone (None for uploaded datasets)."""
    if isinstance(source, InlineSource):
        return len(source.x)
    if isinstance(source, (SpiralsSource, TeacherSource, LinearSource)):
        return source.n_samples
    if isinstance(source, MnistSource):
        total = MNIST_ROWS[source.split]
        return total if source.limit is None else min(source.limit, total)
    return None


def known_features(source: _Spec) -> int | None:
    """Feature width when it follows from the spec alone (None for uploaded datasets)."""
    if isinstance(source, InlineSource):
        return math.prod(sample_shape(source.x[0]))
    if isinstance(source, SpiralsSource):
        return 2
    if isinstance(source, (TeacherSource, LinearSource)):
        return source.n_features
    if isinstance(source, MnistSource):
        return MNIST_FEATURES
    return None


def known_image_shape(source: _Spec) -> tuple[int, int, int] | None:
    """(C, H, W) of a source's samples when they are images (None for feature rows/uploads)."""
    if isinstance(source, InlineSource):
        shape = sample_shape(source.x[0])
        return shape if len(shape) == 3 else None
    if isinstance(source, MnistSource):
        return MNIST_SHAPE
    return None


def known_classes(source: _Spec) -> int | None:
    """Number of classes the labels may take (inline: max label + 1; None for uploads and
    regression sources)."""
    if isinstance(source, InlineSource):
        labels = [v for v in source.y if isinstance(v, int)]
        return max(labels) + 1 if len(labels) == len(source.y) else None
    if isinstance(source, (SpiralsSource, TeacherSource)):
        return source.n_classes
    if isinstance(source, MnistSource):
        return MNIST_CLASSES
    return None


def known_targets(source: _Spec) -> tuple[int | None, bool]:
    """(K, known) for regression: K targets per row (None: a (N,) vector), known=False for
    uploads; classification-only sources give (None, True)."""
    if isinstance(source, InlineSource):
        return target_width(source.y), True
    if isinstance(source, LinearSource):
        return source.n_targets, True
    return None, not isinstance(source, DatasetSource)


def float_target_rows(source: _Spec) -> list[int]:
    """Rows of an inline y that are not class labels (floats or target rows), for classification."""
    if not isinstance(source, InlineSource):
        return []
    return [i for i, v in enumerate(source.y) if not isinstance(v, int)]
