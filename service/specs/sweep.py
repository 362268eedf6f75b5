"""Sweep specs: a base job spec, the parameters to vary and how, the objective, early stopping.

Validating a SweepSpec builds every trial's job spec and validates it as a JobSpec
(sweep_trials.expand_trials), so a sweep whose trials would be invalid never gets accepted.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, JsonValue, PrivateAttr, Tag, model_validator

from .errors import spec_error, union_tag
from .job import JobSpec
from .layers import _Spec
from .training import SEED_LIMIT

MAX_TRIALS = 1000        # trials per sweep (a grid's product, or n_trials)
MAX_PARAMETERS = 20
MAX_VALUES = 1000        # values per `values` distribution
OBJECTIVE_METRICS = ("val_loss", "val_error", "val_rmse", "val_mae")  # rmse/mae: regression jobs
# a dotted path into the job spec: names, and list indices as integers (model.layers.2.p)
PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+))*$"
ParameterPath = Annotated[str, Field(pattern=PATH_PATTERN, max_length=200)]
Number = Annotated[float, Field(strict=False, allow_inf_nan=False)]


class ValuesDistribution(_Spec):
    """An explicit list of values: every one of them in a grid, one drawn uniformly at random."""

    type: Literal["values"] = "values"
    values: list[JsonValue] = Field(min_length=1, max_length=MAX_VALUES)


class UniformDistribution(_Spec):
    """A float drawn uniformly from [low, high] (random search only)."""

    type: Literal["uniform"]
    low: Number
    high: Number

    @model_validator(mode="after")
    def _ordered(self) -> "UniformDistribution":
        if not self.low < self.high:
            raise spec_error("UniformDistribution", [(("high",), "high must exceed low", self.high)])
        return self


class LogUniformDistribution(UniformDistribution):
    """A float whose logarithm is uniform on [log low, log high]; low > 0 (random search only)."""

    type: Literal["loguniform"]
    low: Annotated[Number, Field(gt=0)]


class IntUniformDistribution(_Spec):
    """An integer drawn uniformly from low..high inclusive; a grid takes every one of them."""

    type: Literal["int_uniform"]
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> "IntUniformDistribution":
        if not self.low <= self.high:
            raise spec_error("IntUniformDistribution", [(("high",), "high must be at least low",
                                                         self.high)])
        return self


Distribution = Annotated[
    Union[Annotated[ValuesDistribution, Tag("values")], Annotated[UniformDistribution, Tag("uniform")],
          Annotated[LogUniformDistribution, Tag("loguniform")],
          Annotated[IntUniformDistribution, Tag("int_uniform")]],
    # "type" is optional for {"values": [...]}; the tag is also what locations carry
    Discriminator(lambda value: union_tag(value) if isinstance(value, dict) else value.type),
]


def distribution_size(distribution: Any) -> int | None:
    """How many grid points a distribution has (None: continuous, it has no grid)."""
    if isinstance(distribution, ValuesDistribution):
        return len(distribution.values)
    if isinstance(distribution, IntUniformDistribution):
        return distribution.high - distribution.low + 1
    return None


class GridStrategy(_Spec):
    """Every combination of the parameters' values, the last parameter varying fastest."""

    type: Literal["grid"]


class RandomStrategy(_Spec):
    """n_trials draws; the same seed (and spec) gives the same trials."""

    type: Literal["random"]
    n_trials: int = Field(ge=1, le=MAX_TRIALS)
    seed: int = Field(default=0, ge=0, lt=SEED_LIMIT)


StrategySpec = Annotated[Union[GridStrategy, RandomStrategy], Field(discriminator="type")]


class ObjectiveSpec(_Spec):
    """The epoch metric that ranks trials and drives early stopping."""

    metric: Literal[OBJECTIVE_METRICS] = "val_loss"
    mode: Literal["min", "max"] = "min"


class AshaStopping(_Spec):
    """Asynchronous successive halving: at rung epochs grace_epochs * reduction_factor**k
    (below max_epochs) a trial continues only if it is in the top 1/reduction_factor of the trials
    that reached that rung so far; otherwise it stops, marked pruned."""

    type: Literal["asha"]
    grace_epochs: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2, le=100)
    max_epochs: int | None = Field(default=None, ge=1, description="Every trial's training.epochs "
                                   "(default: the base's)")


class MedianStopping(_Spec):
    """At every epoch from grace_epochs on, stop a trial whose metric is worse than the median
    of the succeeded trials' metric at the same epoch (once min_trials of them have it)."""

    type: Literal["median"]
    grace_epochs: int = Field(default=1, ge=1)
    min_trials: int = Field(default=3, ge=1)


EarlyStoppingSpec = Annotated[Union[AshaStopping, MedianStopping], Field(discriminator="type")]


class SweepSpec(_Spec):
    """A hyperparameter sweep; its trials are ordinary jobs built from `base` and `parameters`."""

    base: JobSpec
    parameters: dict[ParameterPath, Distribution] = Field(min_length=1, max_length=MAX_PARAMETERS)
    strategy: StrategySpec = Field(default_factory=lambda: GridStrategy(type="grid"))
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    max_parallel: int = Field(default=2, ge=1, le=MAX_TRIALS,
                              description="At most this many trials queued or running at once")
    early_stopping: EarlyStoppingSpec | None = None
    _trials: list = PrivateAttr(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _strategy_shorthand(cls, data: Any) -> Any:
        # "strategy": "grid" is the obvious spelling of {"type": "grid"}
        if isinstance(data, dict) and data.get("strategy") == "grid":
            return {**data, "strategy": {"type": "grid"}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        issues = self._strategy_issues() + self._path_issues() + self._stopping_issues()
        if self.base.data.validation is None:
            issues.append((("base", "data", self.base.data.type, "validation"),
                           f"the objective {self.objective.metric} is a validation metric: the base "
                           "job needs validation data", None))
        if issues:
            raise spec_error("SweepSpec", issues)
        from .sweep_trials import expand_trials  # builds and validates every trial
        self._trials = expand_trials(self)
        return self

    @property
    def trials(self) -> list:
        """The trials (sweep_trials.Trial) in creation order, built when the spec was validated."""
        return self._trials

    def trial_epochs(self) -> int | None:
        """The epochs every trial trains when early stopping fixes them (asha max_epochs)."""
        if isinstance(self.early_stopping, AshaStopping):
            return self.early_stopping.max_epochs
        return None

    def _strategy_issues(self) -> list:
        if isinstance(self.strategy, RandomStrategy):
            return []
        issues, total = [], 1
        for path, distribution in self.parameters.items():
            size = distribution_size(distribution)
            if size is None:
                issues.append((("parameters", path), f"a grid needs values; {distribution.type} is "
                               "continuous (use {\"values\": [...]} or the random strategy)", None))
            else:
                total *= size
        if not issues and total > MAX_TRIALS:
            issues.append((("parameters",), f"the grid has {total} combinations; at most "
                           f"{MAX_TRIALS} trials per sweep", None))
        return issues

    def _path_issues(self) -> list:
        paths = sorted(self.parameters)
        return [(("parameters", longer), f"overlaps the parameter {shorter!r}", None)
                for shorter, longer in zip(paths, paths[1:]) if longer.startswith(shorter + ".")]

    def _stopping_issues(self) -> list:
        stopping = self.early_stopping
        if stopping is None:
            return []
        epochs = self.trial_epochs() or self.base.training.epochs
        issues = []
        if stopping.grace_epochs >= epochs:
            issues.append((("early_stopping", stopping.type, "grace_epochs"), f"must be below the "
                           f"trials' {epochs} epochs, or no trial is ever stopped early",
                           stopping.grace_epochs))
        if self.trial_epochs() is not None and "training.epochs" in self.parameters:
            issues.append((("parameters", "training.epochs"), "early_stopping.max_epochs sets "
                           "every trial's epochs", None))
        return issues

