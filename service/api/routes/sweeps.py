"""Submit, list, inspect, cancel and delete hyperparameter sweeps (their trials are jobs)."""
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from ...specs.sweep import SweepSpec
from ..deps import CurrentPrincipal, SettingsDep, StoreDep
from ..errors import validation_error
from ..examples import SWEEP_EXAMPLES
from ..sweep_schemas import SweepOut, SweepPage, SweepSummary
from ..sweep_submission import plan_sweep

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
ERRORS = {404: {"description": "Unknown sweep"},
          409: {"description": "The sweep is in the wrong state for this"}}


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=SweepOut,
             summary="Submit a hyperparameter sweep",
             responses={413: {"description": "Body too large"},
                        422: {"description": "Invalid sweep; `loc` names the parameter path, "
                              "value or base field that would make a trial invalid"},
                        429: {"description": "The key's active-job quota cannot hold the trials "
                              "queued at once (min(max_parallel, trials)), or its rate limit"}})
def submit_sweep(sweep: Annotated[SweepSpec, Body(openapi_examples=SWEEP_EXAMPLES)],
                 response: Response, settings: SettingsDep, store: StoreDep,
                 principal: CurrentPrincipal) -> SweepOut:
    """Build every trial from `base` and `parameters` (grid: the values in the order given, the
    last parameter varying fastest; random: draw order from `seed`), validate each one as a job
    spec, then create them all as jobs of the caller's tenant: the first `max_parallel` queued,
    the rest waiting."""
    spec, trials = plan_sweep(sweep, settings, store, principal)
    created = store.create_sweep(spec, trials, tenant=principal.tenant, owner=principal.key_name,
                                 max_active_jobs=principal.limit("max_active_jobs"))
    response.headers["Location"] = f"/v1/sweeps/{created.id}"
    return SweepOut.from_sweep_and_trials(created, store.sweep_trials(created.id))


@router.get("", response_model=SweepPage, summary="List sweeps, newest first")
def list_sweeps(store: StoreDep, principal: CurrentPrincipal,
                limit: Annotated[int, Query(ge=1, le=500)] = 50,
                cursor: Annotated[str | None, Query(max_length=100)] = None) -> SweepPage:
    """One page of the caller's tenant's sweeps (every tenant's for admin keys) with their status
    and trial counts; follow next_cursor for more."""
    try:
        sweeps, next_cursor = store.list_sweeps(limit=limit, cursor=cursor,
                                                tenant=principal.tenant_filter)
    except ValueError as exc:
        raise validation_error([(("query", "cursor"), str(exc), cursor)]) from None
    return SweepPage(items=[SweepSummary.from_sweep(sweep) for sweep in sweeps],
                     next_cursor=next_cursor)


@router.get("/{sweep_id}", response_model=SweepOut, summary="Get a sweep", responses=ERRORS)
def get_sweep(sweep_id: str, store: StoreDep, principal: CurrentPrincipal) -> SweepOut:
    """Status (running until every trial has ended), counts by trial status, the trials table
    (params, objective, epochs run, status incl. pruned) and the best trial so far."""
    sweep = store.get_sweep(sweep_id, tenant=principal.tenant_filter)
    return SweepOut.from_sweep_and_trials(sweep, store.sweep_trials(sweep_id))


@router.post("/{sweep_id}/cancel", response_model=SweepOut, summary="Cancel a sweep",
             responses=ERRORS)
def cancel_sweep(sweep_id: str, store: StoreDep, principal: CurrentPrincipal) -> SweepOut:
    """Waiting and queued trials are cancelled at once; running ones stop at their next step.
    409 when every trial has ended already."""
    sweep = store.cancel_sweep(sweep_id, tenant=principal.tenant_filter)
    return SweepOut.from_sweep_and_trials(sweep, store.sweep_trials(sweep_id))


@router.delete("/{sweep_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete an ended sweep with its trials", responses=ERRORS)
def delete_sweep(sweep_id: str, store: StoreDep, principal: CurrentPrincipal) -> Response:
    """Remove a sweep whose trials have all ended, with the trials' metrics and parameters
    (409 while a trial is active: cancel the sweep first)."""
    store.delete_sweep(sweep_id, tenant=principal.tenant_filter)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
