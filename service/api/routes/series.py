"""A job's loss curve sized for display (long curves downsampled, spikes kept)."""
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from ..deps import CurrentPrincipal, StoreDep
from ..schemas import CurveSeries, MetricPointOut
from ..series import min_max_downsample

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])


@router.get("/metrics/series", response_model=CurveSeries, summary="Loss curve for display",
            responses={404: {"description": "Unknown job"}})
def get_series(job_id: str, store: StoreDep, principal: CurrentPrincipal,
               points: Annotated[int, Query(ge=10, le=20_000, description="Most step points to "
                                            "return")] = 2000,
               key: Annotated[str, Query(max_length=50, description="Step value to plot")] = "loss",
               ) -> CurveSeries:
    """The step curve of `key` with at most `points` points (min/max-preserving downsampling:
    each of points/2 buckets keeps its lowest and highest point, so spikes stay visible), every
    epoch point, and `last_seq` to follow the job live from (events or /metrics ?after=). The raw
    points stay available from /metrics."""
    curve = store.metric_curve(job_id, key, tenant=principal.tenant_filter)
    x, y = min_max_downsample(np.asarray(curve.steps, dtype=np.int64),
                              np.asarray(curve.values, dtype=np.float64), points)
    return CurveSeries(key=key, total=len(curve.steps), downsampled=len(x) < len(curve.steps),
                       step=x.tolist(), values=y.tolist(),
                       epochs=[MetricPointOut.from_point(p) for p in curve.epochs],
                       last_seq=curve.last_seq)
