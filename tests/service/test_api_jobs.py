"""Job routes in-process (API only, no workers): submission, validation, idempotency, listing."""
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings

SPIRALS = {"model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 8, "num_blocks": 1,
                     "num_classes": 3},
           "data": {"type": "spirals", "n_samples": 100}}
LINEAR = {"type": "linear", "in_features": 2, "out_features": 8}


@pytest.fixture
def client(tmp_path):
    settings = Settings(data_dir=tmp_path, workers=0, max_epochs=50, max_parameters=10_000,
                        max_inline_rows=5)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def submit(client, body, **headers):
    return client.post("/v1/jobs", json=body, headers=headers)


def job_count(client):
    return len(client.get("/v1/jobs", params={"limit": 500}).json()["items"])


def test_submit_queues_a_normalised_job(client):
    response = submit(client, SPIRALS)
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["progress"] == {"epoch": 0, "epochs": 1, "step": 0, "steps": 4}  # ceil(100 / 32)
    assert job["param_count"] == (2 * 8 + 8) + (8 * 4 + 4 + 8 + 4 * 8 + 8 + 16) + (8 * 3 + 3)
    assert job["spec"]["optimizer"]["type"] == "sgd" and job["spec"]["training"]["batch_size"] == 32
    assert client.get(f"/v1/jobs/{job['id']}").json()["spec"] == job["spec"]


def with_model_layers(*layers):
    return {**SPIRALS, "model": {"type": "sequential", "layers": list(layers)}}


BAD_SPECS = {
    "linear width": (with_model_layers(LINEAR, {"type": "relu"},
                                       {"type": "linear", "in_features": 7, "out_features": 3}),
                     ["body", "model", "layers", 2, "in_features"]),
    "residual width": (with_model_layers(LINEAR, {"type": "residual", "layers": [
        {"type": "linear", "in_features": 8, "out_features": 4}]}), ["body", "model", "layers", 1]),
    "negative lr": ({**SPIRALS, "optimizer": {"type": "adam", "lr": -1}},
                    ["body", "optimizer", "lr"]),
    "unknown layer": (with_model_layers({"type": "conv3d"}), ["body", "model", "layers", 0]),
    "label range": ({**SPIRALS, "data": {"type": "inline", "x": [[0, 1], [1, 0]], "y": [0, 3]}},
                    ["body", "data", "y", 1]),
    "feature width": ({**SPIRALS, "data": {"type": "teacher", "n_features": 3, "n_classes": 3}},
                      ["body", "data", "n_features"]),
    "ragged x": ({**SPIRALS, "data": {"type": "inline", "x": [[0, 1], [1]], "y": [0, 1]}},
                 ["body", "data", "x", 1]),
    "x/y lengths": ({**SPIRALS, "data": {"type": "inline", "x": [[0, 1]], "y": [0, 1]}},
                    ["body", "data", "y"]),
    "unknown dataset": ({**SPIRALS, "data": {"type": "dataset", "id": "nope"}},
                        ["body", "data", "id"]),
    "mnist missing": ({**SPIRALS, "model": {"type": "mlp_resnet", "in_features": 784,
                                            "hidden_dim": 4, "num_blocks": 0},
                       "data": {"type": "mnist"}}, ["body", "data", "split"]),
    "epochs cap": ({**SPIRALS, "training": {"epochs": 51}}, ["body", "training", "epochs"]),
    "parameter cap": ({**SPIRALS, "model": {"type": "mlp_resnet", "in_features": 2}},
                      ["body", "model"]),
    "inline rows cap": ({**SPIRALS, "data": {"type": "inline", "x": [[0, 1]] * 6, "y": [0] * 6}},
                        ["body", "data", "x"]),
    "extra field": ({**SPIRALS, "training": {"epoch": 2}}, ["body", "training", "epoch"]),
    "fraction": ({**SPIRALS, "data": {"type": "spirals", "validation": {"type": "fraction",
                                                                        "fraction": 1.5}}},
                 ["body", "data", "validation", "fraction"]),
    "fraction leaves no rows": ({**SPIRALS, "data": {"type": "spirals", "n_samples": 1,
                                                     "validation": {"type": "fraction",
                                                                    "fraction": 0.5}}},
                                ["body", "data", "validation", "fraction"]),
    "validation data width": ({**SPIRALS, "data": {"type": "spirals", "validation": {
        "type": "data", "data": {"type": "teacher", "n_features": 5, "n_classes": 3}}}},
        ["body", "data", "validation", "data", "n_features"]),
    "model vs mnist": ({**SPIRALS, "data": {"type": "mnist"}}, ["body", "model", "in_features"]),
}


@pytest.mark.parametrize("name", BAD_SPECS)
def test_bad_spec_is_a_422_at_the_field_and_creates_no_job(client, name):
    body, loc = BAD_SPECS[name]
    response = submit(client, body)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert job_count(client) == 0


def test_malformed_json_is_a_422(client):
    response = client.post("/v1/jobs", content=b'{"model": ', headers={
        "content-type": "application/json"})
    assert response.status_code == 422
    assert job_count(client) == 0


def test_same_idempotency_key_and_body_returns_the_same_job(client):
    first = submit(client, SPIRALS, **{"Idempotency-Key": "abc"})
    spelled_out = {**SPIRALS, "optimizer": {"type": "sgd", "lr": 0.01}}
    again = submit(client, spelled_out, **{"Idempotency-Key": "abc"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    other = submit(client, {**SPIRALS, "training": {"epochs": 2}}, **{"Idempotency-Key": "abc"})
    assert other.status_code == 409
    assert job_count(client) == 1


def test_cancel_and_delete_follow_the_lifecycle(client):
    job_id = submit(client, SPIRALS).json()["id"]
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 409  # still queued
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["finished_at"] is not None
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_outputs_of_an_untrained_job(client):
    job_id = submit(client, SPIRALS).json()["id"]
    assert client.get(f"/v1/jobs/{job_id}/metrics").json() == {"points": [], "next_after": 0}
    assert client.get(f"/v1/jobs/{job_id}/parameters").status_code == 409
    assert client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[0, 1]]}).status_code == 409
    for path in ("", "/metrics", "/parameters"):
        assert client.get(f"/v1/jobs/missing{path}").status_code == 404


def test_list_pages_newest_first_and_filters_before_the_limit(client):
    ids = [submit(client, SPIRALS).json()["id"] for _ in range(5)]
    for job_id in ids[:2]:
        client.post(f"/v1/jobs/{job_id}/cancel")
    seen, cursor = [], None
    while True:
        page = client.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor
                                                                else {})}).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    cancelled = client.get("/v1/jobs", params={"status": "cancelled", "limit": 2}).json()
    assert [job["id"] for job in cancelled["items"]] == ids[1::-1]
    assert "spec" not in cancelled["items"][0]
    assert client.get("/v1/jobs", params={"cursor": "zzz"}).status_code == 422
    assert client.get("/v1/jobs", params={"status": "bogus"}).status_code == 422
