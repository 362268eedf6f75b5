"""Data specs: where the training (and validation) rows come from (discriminated on "type")."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from .errors import spec_error
from .layers import _Spec
from .training import SEED_LIMIT

FLOAT32_MAX = 3.4028234663852886e38
# strict: a JSON string or boolean is a client bug, not a number; values must survive float32
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX,
                                     le=FLOAT32_MAX)]
LABEL_LIMIT = 2**31
Label = Annotated[int, Field(strict=True, ge=0, lt=LABEL_LIMIT)]
# job and dataset ids are 32 hex digits; anything outside this alphabet is refused before a
# database sees it (NUL, lone surrogates, megabyte strings)
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# free text (names): no control characters (NUL breaks PostgreSQL); lone surrogates, which no
# UTF-8 database can store, fail any pattern in pydantic
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
MAX_GENERATED_ROWS = 1_000_000
MAX_GENERATED_VALUES = 50_000_000  # 200 MB of float32 per generated array
MNIST_ROWS = {"train": 60_000, "test": 10_000}
MNIST_FEATURES = 784
MNIST_CLASSES = 10


class InlineSource(_Spec):
    """Rows sent in the request: x (N, F) floats, y (N,) integer labels."""

    type: Literal["inline"]
    x: list[Annotated[list[FiniteFloat], Field(min_length=1)]] = Field(min_length=1)
    y: list[Label] = Field(min_length=1)

    @model_validator(mode="after")
    def _rectangular(self) -> "InlineSource":
        issues = table_issues(self.x, self.y)
        if issues:
            raise spec_error("InlineSource", issues)
        return self


def table_issues(x: list[list[float]], y: list[int] | None = None) -> list:
    """Ragged rows of x (first five) and an x/y length mismatch, as (loc, message, input)."""
    width = len(x[0])
    issues = [(("x", i), f"row {i} has {len(row)} features; row 0 has {width}", None)
              for i, row in enumerate(x) if len(row) != width][:5]
    if y is not None and len(y) != len(x):
        issues.append((("y",), f"y has {len(y)} labels but x has {len(x)} rows", None))
    return issues


class DatasetSource(_Spec):
    """A dataset uploaded with POST /v1/datasets."""

    type: Literal["dataset"]
    id: str = Field(min_length=1, max_length=64, pattern=ID_PATTERN)


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
    """MNIST from the IDX files in Settings.mnist_dir (784 features, 10 classes)."""

    type: Literal["mnist"]
    split: Literal["train", "test"] = "train"
    limit: int | None = Field(default=None, ge=1, le=MNIST_ROWS["train"])


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
        return len(source.x[0])
    if isinstance(source, SpiralsSource):
        return 2
    if isinstance(source, TeacherSource):
        return source.n_features
    if isinstance(source, MnistSource):
        return MNIST_FEATURES
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
