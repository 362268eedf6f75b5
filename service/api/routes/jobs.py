"""Submit, list, inspect, cancel and delete training jobs."""
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ...jobs import Status
from ...specs import JobSpec
from ..deps import CurrentPrincipal, ModelCacheDep, SettingsDep, StoreDep, quick_read
from ..errors import validation_error
from ..examples import JOB_EXAMPLES
from ..json_body import json_body, parse_json
from ..links import JOB_LINKS
from ..params import IdempotencyKey, JobCursor, JobId, SweepFilter
from ..schemas import JobOut, JobPage, JobSummary
from ..submission import plan_submission

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
ERRORS = {404: {"description": "Unknown job"},
          409: {"description": "The job is in the wrong state for this"}}


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             summary="Submit a training job",
             openapi_extra=json_body(JobSpec, JOB_EXAMPLES),
             responses={202: {"description": "Queued", "links": JOB_LINKS},
                        200: {"model": JobOut, "description": "Idempotent replay: the job this "
                              "Idempotency-Key already created", "links": JOB_LINKS},
                        409: {"description": "Idempotency-Key reused with a different body"},
                        413: {"description": "Body too large"},
                        415: {"description": "The body is not application/json"},
                        422: {"description": "Invalid spec (or over a cost bound); `loc` names "
                              "the field"},
                        429: {"description": "The key's active-job quota (queued + running) is "
                              "full, or its rate limit; see `Retry-After`"}})
async def submit_job(request: Request, response: Response, settings: SettingsDep, store: StoreDep,
                     principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None) -> JobOut:
    """Validate the spec (shapes, data, server caps, cost bounds, the key's max priority), then
    queue it for a worker, in the caller's tenant. Idempotency keys are per tenant. Parsing,
    planning and the insert run off the event loop."""
    spec = await parse_json(request, JobSpec)
    return await run_in_threadpool(_queue, spec, response, settings, store, principal,
                                   idempotency_key)


def _queue(spec: JobSpec, response: Response, settings, store, principal,
           idempotency_key) -> JobOut:
    plan = plan_submission(spec, settings, store, principal)
    job, created = store.create_job(plan.spec, param_count=plan.param_count, epochs=plan.epochs,
                                    steps=plan.steps, idempotency_key=idempotency_key,
                                    request_hash=plan.request_hash, tenant=principal.tenant,
                                    owner=principal.key_name, priority=spec.priority,
                                    max_active_jobs=principal.limit("max_active_jobs"))
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.from_job(job)


@router.get("", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(store: StoreDep, principal: CurrentPrincipal,
              status_filter: Annotated[Status | None, Query(alias="status")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              cursor: JobCursor = None,
              tag: Annotated[list[str], Query(max_length=10, description=
                             "key:value; repeat for jobs carrying every one of them")] = [],
              name_prefix: Annotated[str | None, Query(min_length=1, max_length=200, description=
                                     "jobs whose name starts with this (case-sensitive)")] = None,
              sweep_id: SweepFilter = None,
              ) -> JobPage:
    """One page of the caller's tenant's jobs (every tenant's for admin keys), filtered before
    the limit (status, tags, name prefix, sweep); follow next_cursor for more."""
    tags = []
    for index, item in enumerate(tag):
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise validation_error([(("query", "tag", index), "expected key:value", item)])
        tags.append((key, value))
    try:
        jobs, next_cursor = store.list_jobs(status=status_filter, limit=limit, cursor=cursor,
                                            tenant=principal.tenant_filter, tags=tags,
                                            name_prefix=name_prefix, sweep_id=sweep_id)
    except ValueError as exc:
        raise validation_error([(("query", "cursor"), str(exc), cursor)]) from None
    return JobPage(items=[JobSummary.from_job(job) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut, summary="Get a job", responses=ERRORS)
async def get_job(job_id: JobId, store: StoreDep, principal: CurrentPrincipal) -> JobOut:
    """Status, progress, timestamps, final metrics, error and spec. Cheap to poll whatever the
    job's size: inline data sources show `n_rows` and `n_features` instead of their `x`/`y`
    arrays (GET /v1/jobs/{id}/spec has them)."""
    return JobOut.from_job(await quick_read(store, store.get_job, job_id, with_spec=False,
                                            tenant=principal.tenant_filter))


@router.get("/{job_id}/spec", response_class=JSONResponse, summary="Get a job's full spec",
            responses={200: {"description": "The normalised spec, inline arrays included",
                             # a $ref, not model=JobSpec, which would split it into -Input/-Output
                             "content": {"application/json": {"schema": {
                                 "$ref": "#/components/schemas/JobSpec"}}}},
                       404: ERRORS[404]})
def get_job_spec(job_id: JobId, store: StoreDep, principal: CurrentPrincipal) -> JSONResponse:
    """The job's normalised spec exactly as it was accepted (defaults filled in, inline `x`/`y`
    arrays included; these can be megabytes, so job responses leave them out)."""
    return JSONResponse(store.get_job(job_id, with_spec=True, tenant=principal.tenant_filter).spec)


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", responses=ERRORS)
def cancel_job(job_id: JobId, store: StoreDep, principal: CurrentPrincipal) -> JobOut:
    """A queued job is cancelled at once; a running one stops at its next step (metrics kept).
    409 when the job has already ended."""
    return JobOut.from_job(store.request_cancel(job_id, tenant=principal.tenant_filter))


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a finished job", responses=ERRORS)
def delete_job(job_id: JobId, store: StoreDep, cache: ModelCacheDep,
               principal: CurrentPrincipal) -> Response:
    """Remove a job that has ended, with its metrics and parameters (409 while it is active)."""
    store.delete_job(job_id, tenant=principal.tenant_filter)
    cache.discard(job_id)  # free its built model now (lookups re-read the job anyway)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
