"""The event stream's hand-built metric events carry exactly what /metrics returns."""
import json

import pytest

from service.api.schemas import MetricPointOut
from service.api.streams.encoding import metric_event
from service.jobs import MetricPoint


@pytest.mark.parametrize("values", [{"loss": 0.123456789}, {"loss": 1}, {"loss": 1e-30, "lr": 3e-4},
                                    {"train_loss": 0.5, "val_loss": None, "val_error": 0.0},
                                    {"loss": float("inf")}, {"loss": float("nan")}, {}])
def test_metric_event_data_is_the_metrics_point(values):
    point = MetricPoint(seq=41, kind="step", epoch=2, step=99, values=values)
    lines = metric_event(point).decode().split("\n")
    assert lines[:2] == ["event: metric", "id: 41"] and lines[-2:] == ["", ""]
    data = lines[2].removeprefix("data: ")
    assert data == MetricPointOut.from_point(point).model_dump_json()
    assert json.loads(data)["seq"] == 41
