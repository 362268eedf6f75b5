"""Predictions never answer NaN or inf (JSON has none): huge weights give a 422, not a 500."""
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.jobs import Lease, Status
from service.jobs.results import NonFiniteOutput
from service.settings import Settings
from service.training import parameters_to_bytes, predict_arrays

MODEL = {"type": "sequential", "layers": [{"type": "linear", "in_features": 2, "out_features": 3}]}
SPEC = {"model": MODEL, "data": {"type": "spirals", "n_samples": 30}}


def linear_parameters(scale: float) -> bytes:
    """A stored 2 -> 3 linear model whose weights are `scale`."""
    state = {"0.weight": np.full((2, 3), scale, dtype=np.float32), "0.bias": np.zeros((1, 3), np.float32)}
    return parameters_to_bytes(state, MODEL)


def test_overflowing_rows_are_named():
    x = np.array([[1e-3, 1e-3], [1e3, 1e3], [1.0, 0.0]], dtype=np.float32)
    with pytest.raises(NonFiniteOutput) as caught:
        predict_arrays(linear_parameters(1e36), x)
    assert caught.value.rows == [1]  # 2e3 * 1e36 overflows float32; 1e36 does not
    assert predict_arrays(linear_parameters(1.0), x)["classes"] == [0, 0, 0]


def test_non_finite_inputs_are_refused():
    with pytest.raises(ValueError, match="NaN or infinite"):
        predict_arrays(linear_parameters(1.0), np.array([[np.inf, 0.0]], dtype=np.float32))


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, workers=0))) as test_client:
        yield test_client


def finished_job(client, scale: float) -> str:
    """A job that 'trained' to weights of `scale`, written through the store like a worker."""
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    store = client.app.state.store
    claimed = store.claim("w1", 30)
    assert claimed.id == job_id
    store.finish(Lease(job_id, "w1", claimed.attempt), Status.succeeded, result={},
                 parameters=linear_parameters(scale))
    return job_id


def test_huge_weights_give_a_422_naming_the_row(client):
    job_id = finished_job(client, 1e36)
    response = client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[0.0, 0.0], [1000.0, 1000.0]]})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "x", 1]
    assert "not finite" in response.json()["detail"][0]["msg"]
    ok = client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[0.0, 0.0]]})
    assert ok.status_code == 200 and ok.json()["logits"] == [[0.0, 0.0, 0.0]]
