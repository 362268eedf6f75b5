"""Submission over HTTP on an API-only server (--workers 0): validation, idempotency, limits,
listing, cancelling queued jobs, probes. Nothing here trains."""
import pytest

from .specs import spirals

LINEAR_2_8 = {"type": "linear", "in_features": 2, "out_features": 8}


def sequential(*layers) -> dict:
    return {**spirals(), "model": {"type": "sequential", "layers": list(layers)}}


def with_data(**data) -> dict:
    return {**spirals(), "data": data}


BAD_SPECS = {
    "linear in_features": (sequential(LINEAR_2_8, {"type": "relu"},
                                      {"type": "linear", "in_features": 9, "out_features": 3}),
                           ["body", "model", "layers", 2, "in_features"]),
    "residual width": (sequential(LINEAR_2_8, {"type": "residual", "layers": [
        {"type": "linear", "in_features": 8, "out_features": 5}]},
        {"type": "linear", "in_features": 5, "out_features": 3}), ["body", "model", "layers", 1]),
    "norm dim": (sequential(LINEAR_2_8, {"type": "batchnorm1d", "dim": 4},
                            {"type": "linear", "in_features": 8, "out_features": 3}),
                 ["body", "model", "layers", 1, "dim"]),
    "model input width": (with_data(type="teacher", n_features=7, n_classes=3),
                          ["body", "data", "n_features"]),
    "label range": (with_data(type="inline", x=[[0, 1], [1, 0]], y=[0, 3]),
                    ["body", "data", "y", 1]),
    "ragged x": (with_data(type="inline", x=[[0, 1], [1, 0, 2]], y=[0, 1]),
                 ["body", "data", "x", 1]),
    "x/y lengths": (with_data(type="inline", x=[[0, 1]], y=[0, 1]), ["body", "data", "y"]),
    "unknown dataset": (with_data(type="dataset", id="no-such-dataset"),
                        ["body", "data", "id"]),
    "mnist files": ({**spirals(), "model": {"type": "mlp_resnet", "in_features": 784},
                     "data": {"type": "mnist"}}, ["body", "data", "split"]),
    "epochs cap": ({**spirals(), "training": {"epochs": 1001}}, ["body", "training", "epochs"]),
    "parameters cap": ({**spirals(), "model": {"type": "mlp_resnet", "in_features": 2,
                                               "hidden_dim": 3000, "num_blocks": 1}},
                       ["body", "model"]),
    "momentum range": ({**spirals(), "optimizer": {"type": "sgd", "momentum": 1.0}},
                       ["body", "optimizer", "momentum"]),
    "unknown field": ({**spirals(), "optimizer": {"type": "adam", "learning_rate": 0.1}},
                      ["body", "optimizer", "learning_rate"]),
    "unknown layer type": (sequential({"type": "conv3d"}), ["body", "model", "layers", 0]),
    "validation fraction": (with_data(type="spirals", validation={"type": "fraction",
                                                                 "fraction": 1}),
                            ["body", "data", "validation", "fraction"]),
}


@pytest.mark.parametrize("name", BAD_SPECS)
def test_bad_spec_is_a_422_naming_the_field(api_only, name):
    body, loc = BAD_SPECS[name]
    before = job_ids(api_only)
    response = api_only.client.post("/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]], response.json()
    assert job_ids(api_only) == before  # nothing was queued


def job_ids(server, **params) -> list[str]:
    return [job["id"] for job in server.client.get("/v1/jobs", params={"limit": 500, **params}
                                                   ).json()["items"]]


def test_idempotency_key(api_only):
    key = {"Idempotency-Key": "lifecycle-key-1"}
    first = api_only.client.post("/v1/jobs", json=spirals(seed=5), headers=key)
    replay = api_only.client.post("/v1/jobs", json=spirals(seed=5), headers=key)
    assert first.status_code == 202 and replay.status_code in (200, 202)
    assert replay.json()["id"] == first.json()["id"]
    other = api_only.client.post("/v1/jobs", json=spirals(seed=6), headers=key)
    assert other.status_code == 409
    assert job_ids(api_only).count(first.json()["id"]) == 1


def test_concurrent_retries_with_one_key_create_one_job(api_only):
    from concurrent.futures import ThreadPoolExecutor
    key = {"Idempotency-Key": "concurrent-key"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: api_only.client.post(
            "/v1/jobs", json=spirals(seed=7), headers=key), range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len({r.json()["id"] for r in responses}) == 1


def test_oversized_body_is_a_413(api_only):
    spec = with_data(type="inline", x=[[0.123456789, 0.987654321]] * 8000, y=[0] * 8000)
    response = api_only.client.post("/v1/jobs", json=spec)  # ~250 kB; this server takes 200 kB
    assert response.status_code == 413
    assert "detail" in response.json()


def test_cancel_queued_job_then_delete(api_only):
    job_id = api_only.submit(spirals())["id"]
    assert api_only.client.delete(f"/v1/jobs/{job_id}").status_code == 409
    cancelled = api_only.client.post(f"/v1/jobs/{job_id}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
    assert api_only.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert api_only.client.get(f"/v1/jobs/{job_id}/parameters").status_code == 409
    assert api_only.client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert api_only.client.get(f"/v1/jobs/{job_id}").status_code == 404


def test_pagination_and_status_filter(api_only):
    created = [api_only.submit(spirals(seed=seed))["id"] for seed in range(5)]
    for job_id in created[1:3]:
        api_only.client.post(f"/v1/jobs/{job_id}/cancel")
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api_only.client.get("/v1/jobs", params=params).json()
        assert len(page["items"]) <= 2
        pages += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages[:5] == created[::-1] and len(pages) == len(set(pages))
    cancelled = api_only.client.get("/v1/jobs", params={"status": "cancelled", "limit": 2}).json()
    assert [job["id"] for job in cancelled["items"]] == [created[2], created[1]]
    assert all(job["status"] == "cancelled" for job in cancelled["items"])
    queued = job_ids(api_only, status="queued")
    assert set(created) - set(created[1:3]) <= set(queued)


def test_health_probes_without_workers(api_only):
    assert api_only.client.get("/healthz").json() == {"status": "ok"}
    ready = api_only.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["workers_configured"] == 0 and ready.json()["store"] is True


def test_openapi_and_docs_are_served(api_only):
    assert api_only.client.get("/openapi.json").json()["info"]["title"] == "needle-service"
    assert api_only.client.get("/docs").status_code == 200
