"""Server-side checks of every trial of a sweep (caps, datasets, MNIST files), then its plan."""
from fastapi.exceptions import RequestValidationError

from ..jobs import JobStore
from ..jobs.briefs import brief_spec
from ..jobs.records import TrialPlan
from ..settings import Settings
from ..specs.errors import plain_loc
from ..specs.sweep import SweepSpec
from ..specs.sweep_trials import MAX_REPORTED_ISSUES, trial_issue
from .auth import Principal
from .errors import validation_error
from .submission import plan_submission


def plan_sweep(sweep: SweepSpec, settings: Settings, store: JobStore,
               principal: Principal) -> tuple[dict, list[TrialPlan]]:
    """(the normalised sweep spec to store, one plan per trial), or a 422 whose locations name
    the parameter (or the base field) that makes a trial unacceptable on this server or for
    this API key (caps, datasets of its tenant, its max priority)."""
    plans, issues = [], []
    spec = sweep.model_dump(mode="json")
    for trial in sweep.trials:
        try:
            plan = plan_submission(trial.spec, settings, store, principal)
        except RequestValidationError as exc:
            issues += [_sweep_issue(trial, error, spec) for error in exc.errors()]
            continue
        plans.append(TrialPlan(spec=plan.spec, params=trial.params, param_count=plan.param_count,
                               epochs=plan.epochs, steps=plan.steps))
    if issues:
        raise validation_error(_unique(issues)[:MAX_REPORTED_ISSUES])
    spec["base"] = brief_spec(spec["base"])  # trials keep their full specs; polls stay cheap
    return spec, plans


def _sweep_issue(trial, error: dict, spec: dict) -> tuple:
    """A trial's job-level issue (loc ("body", ...spec path)) at the sweep's parameter that set
    that field, or else at the base's field (every trial shares it); plain locations (no union
    tags), like every check made after parsing."""
    loc = tuple(error["loc"][1:])
    found = trial_issue(trial.index, trial.params, trial.choices, loc, error["msg"])
    if found is None:
        return ("body", "base", *loc), error["msg"], error.get("input")
    found_loc, message, value = found
    return ("body", *plain_loc(found_loc, spec)), message, value


def _unique(issues: list) -> list:
    seen, out = set(), []
    for loc, message, value in issues:
        if (loc, message) not in seen:
            seen.add((loc, message))
            out.append((loc, message, value))
    return out
