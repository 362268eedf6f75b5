"""A sweep's trials: grid combinations or seeded random draws, each applied to the base spec at
its dotted paths and validated as a JobSpec; errors name the parameter that made a trial invalid."""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .data import InlineSource, known_rows
from .errors import Loc, plain_loc, spec_error
from .job import JobSpec

if TYPE_CHECKING:
    from .sweep import SweepSpec

MAX_INLINE_TRIAL_ROWS = 200_000   # trials x inline rows: each trial stores its own copy
MAX_REPORTED_ISSUES = 20


@dataclass(frozen=True)
class Trial:
    """One trial: its number in creation order, the value of each parameter, its job spec."""

    index: int
    params: dict[str, Any]       # path -> value, in the sweep's parameter order
    choices: dict[str, int]      # path -> index into its `values` (values distributions only)
    spec: JobSpec


def path_parts(path: str) -> tuple[str | int, ...]:
    """"model.layers.2.p" -> ("model", "layers", 2, "p")."""
    return tuple(int(part) if part.isdigit() else part for part in path.split("."))


def expand_trials(sweep: SweepSpec) -> list[Trial]:
    """Every trial of the sweep, validated; a ValidationError (locations relative to the sweep)
    names each parameter path or value that yields an invalid job spec."""
    base = sweep.base.model_dump(mode="json")
    if sweep.trial_epochs() is not None:
        base["training"]["epochs"] = sweep.trial_epochs()
    issues = [issue for path in sweep.parameters if (issue := _missing_path(base, path))]
    issues += _inline_issues(sweep)
    if issues:
        raise spec_error("SweepSpec", issues)
    trials = []
    for index, (params, choices) in enumerate(_draws(sweep)):
        doc = base
        for path, value in params.items():
            doc = _with_value(doc, path_parts(path), value)
        try:
            trials.append(Trial(index, params, choices, JobSpec.model_validate(doc)))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                issue = trial_issue(index, params, choices, plain_loc(tuple(error["loc"]), doc),
                                    error["msg"])
                issues.append(issue or (("parameters",), f"trial {index} {params} is not a valid "
                                        f"job: at {_dotted(error['loc'], doc)}: {error['msg']}", None))
    if issues:
        raise spec_error("SweepSpec", _unique(issues)[:MAX_REPORTED_ISSUES])
    return trials


def trial_issue(index: int, params: dict[str, Any], choices: dict[str, int], loc: Loc,
                message: str) -> tuple[Loc, str, Any] | None:
    """A problem at `loc` (a plain path in trial `index`'s job spec) as a sweep issue located at
    the parameter that set that part of the spec (its value's index for a values distribution);
    None when no parameter did (the base's fault, or the combination's)."""
    for path, value in params.items():
        parts = path_parts(path)
        if tuple(loc[:len(parts)]) == parts:
            if path in choices:
                # the distribution's tag, then its field: the locations pydantic itself makes
                return ("parameters", path, "values", "values", choices[path]), message, value
            return ("parameters", path), f"trial {index} draws {value!r}: {message}", value
    return None


def _draws(sweep: SweepSpec) -> list[tuple[dict[str, Any], dict[str, int]]]:
    """(params, choices) per trial: grid order (last parameter fastest) or draw order."""
    if sweep.strategy.type == "grid":
        axes = [[(path, index, value) for index, value in enumerate(_grid_values(dist))]
                for path, dist in sweep.parameters.items()]
        return [({path: value for path, _, value in combo},
                 {path: index for path, index, _ in combo if sweep.parameters[path].type == "values"})
                for combo in itertools.product(*axes)]
    rng = random.Random(sweep.strategy.seed)
    draws = []
    for _ in range(sweep.strategy.n_trials):
        params, choices = {}, {}
        for path, dist in sweep.parameters.items():
            if dist.type == "values":
                choices[path] = rng.randrange(len(dist.values))
                params[path] = dist.values[choices[path]]
            else:
                params[path] = _sample(rng, dist)
        draws.append((params, choices))
    return draws


def _grid_values(dist) -> list:
    return list(dist.values) if dist.type == "values" else list(range(dist.low, dist.high + 1))


def _sample(rng: random.Random, dist) -> float | int:
    if dist.type == "uniform":
        return rng.uniform(dist.low, dist.high)
    if dist.type == "loguniform":
        return math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
    return rng.randint(dist.low, dist.high)


def _missing_path(doc: Any, path: str) -> tuple[Loc, str, str] | None:
    """An issue when `path` does not name an existing field of the (normalised) base spec."""
    node, walked = doc, []
    for part in path_parts(path):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            where = ".".join(map(str, walked)) or "the top level"
            options = (f"fields: {', '.join(sorted(node))}" if isinstance(node, dict)
                       else f"{len(node)} items" if isinstance(node, list) else "a value, not an object")
            return ("parameters", path), f"the base spec has no {part!r} at {where} ({options})", path
        walked.append(part)
    return None


def _with_value(node: Any, parts: tuple, value: Any) -> Any:
    """A copy of node with `value` at `parts`; only the containers on the path are copied, so
    trials share the base's other (possibly large, inline) parts."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[head] = _with_value(node[head], rest, value)
    return copy


def _inline_issues(sweep: SweepSpec) -> list:
    data = sweep.base.data
    sources = [data] + ([data.validation.data] if data.validation is not None
                        and data.validation.type == "data" else [])
    rows = sum(known_rows(source) for source in sources if isinstance(source, InlineSource))
    n_trials = len(_draws(sweep)) if rows else 0
    if rows * n_trials > MAX_INLINE_TRIAL_ROWS:
        return [(("base", "data", data.type), f"{n_trials} trials x {rows} inline rows exceeds "
                 f"{MAX_INLINE_TRIAL_ROWS}: upload the data (POST /v1/datasets) and sweep over "
                 "{\"type\": \"dataset\"}", None)]
    return []


def _dotted(loc: tuple, doc: Any) -> str:
    return ".".join(map(str, plain_loc(loc, doc)))


def _unique(issues: list) -> list:
    seen, out = set(), []
    for loc, message, value in issues:
        key = (loc, message)
        if key not in seen:
            seen.add(key)
            out.append((loc, message, value))
    return out
