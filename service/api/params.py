"""Path, query and header parameters with their real constraints, declared once (and documented
in openapi.json): malformed ids, cursors and keys are a 422 before any database sees them."""
from typing import Annotated

from fastapi import Header, Path, Query

from ..specs import ID_PATTERN

MAX_SEQ = 2**63 - 1  # metric and job sequence numbers are signed 64-bit integers in both stores

JobId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64,
                            description="A job id (32 hex digits as returned by POST /v1/jobs)")]
DatasetId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64,
                                description="A dataset id (as returned by POST /v1/datasets)")]
SweepId = Annotated[str, Path(pattern=ID_PATTERN, max_length=64,
                              description="A sweep id (as returned by POST /v1/sweeps)")]
SweepFilter = Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64,
                                          description="only the trials of this sweep")]
JobCursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$",
                                        description="next_cursor of the previous page")]
MetricsAfter = Annotated[int, Query(ge=0, le=MAX_SEQ,
                                    description="Return points with seq > after (next_after)")]
IdempotencyKey = Annotated[str | None, Header(
    min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
    description="Retrying with the same key and body returns the job the first request created "
                "(200) instead of a second job; 1-200 visible ASCII characters")]
