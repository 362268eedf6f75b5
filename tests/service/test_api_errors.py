"""Cross-cutting API behaviour: error shapes, union-tag stripping, body limits, health probes."""
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.api.errors import strip_union_tags
from service.settings import Settings

SPEC = {"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 4, "num_blocks": 0,
                  "num_classes": 3}, "data": {"type": "spirals", "n_samples": 10}}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, workers=0,
                                        max_body_bytes=5_000))) as test_client:
        yield test_client


@pytest.mark.parametrize("loc, expected", [
    (("body", "model", "sequential", "layers", 1, "linear", "in_features"),
     ("body", "model", "layers", 1, "in_features")),
    (("body", "data", "spirals", "validation", "fraction", "fraction"),
     ("body", "data", "validation", "fraction")),
    (("body", "data", "spirals", "validation", "data", "data"),
     ("body", "data", "validation", "data")),
    (("query", "limit"), ("query", "limit")),
])
def test_strip_union_tags(loc, expected):
    body = {"model": {"type": "sequential", "layers": [{"type": "relu"}, {
        "type": "linear", "in_features": 3}]},
        "data": {"type": "spirals", "validation": {"type": "fraction", "fraction": 2}}}
    if loc[-1] == "data":
        body["data"]["validation"] = {"type": "data"}
    assert strip_union_tags(loc, body) == expected


def test_declared_oversized_body_is_a_413(client):
    response = client.post("/v1/jobs", content=b" " * 6_000,
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": "request body exceeds 5000 bytes"}


def test_streamed_oversized_body_is_a_413(client):
    chunks = (b" " * 1_000 for _ in range(10))  # no Content-Length: chunked transfer
    response = client.post("/v1/jobs", content=chunks, headers={
        "content-type": "application/json"})
    assert response.status_code == 413
    assert client.get("/v1/jobs").json()["items"] == []


def test_body_under_the_limit_is_accepted(client):
    assert client.post("/v1/jobs", json=SPEC).status_code == 202


def test_errors_have_one_shape(client):
    assert client.get("/v1/jobs/nope").json() == {"detail": "job nope not found"}
    assert client.get("/v1/nothing").json() == {"detail": "Not Found"}
    detail = client.post("/v1/jobs", json={"model": {}}).json()["detail"]
    assert isinstance(detail, list) and all({"loc", "msg", "type"} <= set(e) for e in detail)


def test_non_finite_input_is_a_422_not_a_500(client):
    body = b'{"model": {"type": "mlp_resnet", "in_features": 2}, "data": {"type": "inline", ' \
           b'"x": [[1.0, NaN]], "y": [0]}}'
    response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", "x", 0, 1]
    assert response.json()["detail"][0]["input"] == "nan"


def test_large_inputs_are_not_echoed_back(client):
    response = client.post("/v1/jobs", json={**SPEC, "data": {"type": "inline", "x": [
        [0.0, 1.0]] * 100, "y": "labels"}})
    assert response.status_code == 422
    assert len(response.text) < 2_000


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


class DeadPool:
    def alive(self):
        return 0


def test_readyz_is_503_when_configured_workers_are_dead(client):
    client.app.state.settings = client.app.state.settings.model_copy(update={"workers": 2})
    client.app.state.pool = DeadPool()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["workers_alive"] == 0 and response.json()["problems"]
