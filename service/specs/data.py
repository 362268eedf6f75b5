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
    """Rows sent in the request: x (N, F) floats or (N, C, H, W) images, y (N,) integer labels."""

    type: Literal["inline"]
    x: Rows
    y: list[Label] = Field(min_length=1)

    @model_validator(mode="after")
    def _rectangular(self) -> "InlineSource":
        issues = table_issues(self.x, self.y)
        if issues:
            raise spec_error("InlineSource", issues)
        return self


def table_issues(x: list[list], y: list[int] | None = None) -> list:
    """Rows of x shaped unlike row 0 (first five) and an x/y length mismatch, as
    (loc, message, input)."""
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
    return issues


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


class MnistSource(_Spec):
    """MNIST from the IDX files in Settings.mnist_dir: (1, 28, 28) images (784 features in
    [0, 1] for models of feature rows), 10 classes."""

    type: Literal["mnist"]
    split: Literal["train", "test"] = "train"
    limit: int | None = Field(default=None, ge=1)


SourceSpec = Annotated[
    Union[InlineSource, DatasetSource, SpiralsSource, TeacherSource, MnistSource],
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


class InlineData(InlineSource):
    """Inline rows, with optional validation."""

    validation: ValidationSpec | None = None


class DatasetData(DatasetSource):
    """An uploaded dataset, with optional validation."""

    validation: ValidationSpec | None = None


class SpiralsData(SpiralsSource):
    """Spirals, with optional validation."""

    validation: ValidationSpec | None = None


class TeacherData(TeacherSource):
    """Teacher-network data, with optional validation."""

    validation: ValidationSpec | None = None


class MnistData(MnistSource):
    """MNIST, with optional validation."""

    validation: ValidationSpec | None = None


DataSpec = Annotated[
    Union[InlineData, DatasetData, SpiralsData, TeacherData, MnistData],
    Field(discriminator="type"),
]


def known_rows(source: _Spec) -> int | None:
    """Row count when it follows from the spec alone (None for uploaded datasets)."""
    if isinstance(source, InlineSource):
        return len(source.x)
    if isinstance(source, (SpiralsSource, TeacherSource)):
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
    if isinstance(source, TeacherSource):
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
    """Number of classes the labels may take (inline: max label + 1; None for uploads)."""
    if isinstance(source, InlineSource):
        return max(source.y) + 1
    if isinstance(source, (SpiralsSource, TeacherSource)):
        return source.n_classes
    if isinstance(source, MnistSource):
        return MNIST_CLASSES
    return None
