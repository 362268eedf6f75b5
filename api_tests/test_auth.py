"""API keys and tenants over HTTP: 401s, another tenant's objects are 404 on every route, lists
and idempotency keys are per tenant, admins see everything, `serve` refuses to start exposed
without a key."""
import re
import subprocess
import sys

import httpx
import pytest

from .server import Server, free_port, wait_for
from .specs import spirals, sweep_base
from .sse import collect
from .test_datasets import npz_bytes

import numpy as np

AUTH_ENV = {"NEEDLE_AUTH": "required", "NEEDLE_AUTH_CACHE_SECONDS": "0.2"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A server that requires keys, with tenants alice (two keys), bob and an admin."""
    server = Server(tmp_path_factory.mktemp("auth"), workers=1, env=AUTH_ENV)
    keys = {"alice": server.create_key("alice"),
            "alice2": server.create_key("alice2", "--tenant", "alice"),
            "bob": server.create_key("bob"), "root": server.create_key("root", "--admin")}
    yield from server.serving_keys(keys)


@pytest.fixture(scope="module")
def alice_objects(secured):
    """A succeeded job, a dataset and a sweep of tenant alice."""
    server, clients = secured
    job = clients["alice"].post("/v1/jobs", json=spirals(epochs=1)).json()
    wait_for(lambda: clients["alice"].get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded",
             60, "alice's job to succeed")
    x = np.random.default_rng(0).normal(size=(30, 2))
    dataset = clients["alice"].post("/v1/datasets", files={"file": ("d.npz", npz_bytes(
        x=x, y=np.arange(30) % 3))}).json()
    sweep = clients["alice"].post("/v1/sweeps", json={
        "base": sweep_base(epochs=1), "parameters": {"optimizer.lr": {"values": [0.01]}}})
    assert sweep.status_code in (200, 201, 202), sweep.text
    return job["id"], dataset["id"], sweep.json()["id"]


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_malformed_and_unknown_keys_are_401(secured):
    server, _ = secured
    _assert_unauthorized(server.client.get("/v1/jobs"))
    _assert_unauthorized(server.client.post("/v1/jobs", json=spirals()))
    _assert_unauthorized(server.client.get("/v1/jobs", headers={"Authorization": "Basic YTpi"}))
    _assert_unauthorized(server.client.get("/v1/datasets", headers={"Authorization": "Bearer"}))
    _assert_unauthorized(server.client.get("/v1/jobs", headers={"Authorization": "Bearer nsk_nope"}))
    _assert_unauthorized(server.client.get("/v1/no-such-route"))  # no route map for strangers


def test_health_readiness_and_docs_stay_open(secured):
    server, _ = secured
    for path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert server.client.get(path).status_code == 200, path


def test_openapi_declares_the_bearer_scheme_for_swagger_authorize(secured):
    server, _ = secured
    document = server.client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["APIKey"] == {
        "type": "http", "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["APIKey"]["description"]}
    submit = document["paths"]["/v1/jobs"]["post"]
    assert submit["security"] == [{"APIKey": []}] and "401" in submit["responses"]


def test_a_revoked_key_is_refused(secured):
    server, _ = secured
    key = server.create_key("short-lived")
    with server.client_for(key) as client:
        assert client.get("/v1/jobs").status_code == 200
        revoked = server.keys_command("revoke", "short-lived")
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        response = wait_for(lambda: (r := client.get("/v1/jobs")).status_code == 401 and r, 30,
                            "the revocation to reach the API")
        _assert_unauthorized(response)
        assert "revoked" in response.json()["detail"]
    listing = server.keys_command("list")
    assert "'short-lived'" in listing.stdout and "revoked" in listing.stdout


def test_another_tenants_job_and_dataset_are_404_on_every_route(secured, alice_objects):
    _, clients = secured
    job_id, dataset_id, _ = alice_objects
    bob = clients["bob"]
    for method, path, body in [
            ("GET", f"/v1/jobs/{job_id}", None), ("GET", f"/v1/jobs/{job_id}/spec", None),
            ("GET", f"/v1/jobs/{job_id}/metrics", None),
            ("GET", f"/v1/jobs/{job_id}/metrics/series", None),
            ("GET", f"/v1/jobs/{job_id}/events", None),
            ("GET", f"/v1/jobs/{job_id}/parameters", None),
            ("GET", f"/v1/jobs/{job_id}/parameters?format=safetensors", None),
            ("POST", f"/v1/jobs/{job_id}/predict", {"x": [[0.1, 0.2]]}),
            ("POST", f"/v1/jobs/{job_id}/evaluate", {"data": {"type": "spirals", "n_samples": 10}}),
            ("POST", f"/v1/jobs/{job_id}/cancel", None), ("DELETE", f"/v1/jobs/{job_id}", None),
            ("GET", f"/v1/datasets/{dataset_id}", None), ("DELETE", f"/v1/datasets/{dataset_id}", None)]:
        response = bob.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert job_id not in response.text or "not found" in response.text
    # the same 404 as for an id that never existed: nothing tells bob the job exists
    assert bob.get(f"/v1/jobs/{job_id}").json() == {"detail": f"job {job_id} not found"}
    on_alices_data = spirals()
    on_alices_data["data"] = {"type": "dataset", "id": dataset_id}
    refused = bob.post("/v1/jobs", json=on_alices_data)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "data", "id"]
    # nothing was touched: alice (and her second key) still see both
    for name in ("alice", "alice2"):
        assert clients[name].get(f"/v1/jobs/{job_id}").status_code == 200
        assert clients[name].get(f"/v1/datasets/{dataset_id}").status_code == 200
        assert clients[name].post(f"/v1/jobs/{job_id}/predict", json={"x": [[0.1, 0.2]]}).status_code == 200
    trained = clients["alice2"].post("/v1/jobs", json=on_alices_data)
    assert trained.status_code == 202, trained.text  # same tenant, other key: allowed
    # warm starts: alice's job is unknown to bob, and alice's own dataset is evaluated for alice
    warm = {**spirals(), "training": {"epochs": 1, "init_from": {"job": job_id}}}
    refused = bob.post("/v1/jobs", json=warm)
    assert refused.status_code == 422 and "does not exist" in refused.json()["detail"][0]["msg"]
    assert clients["alice2"].post("/v1/jobs", json=warm).status_code == 202
    alices_eval = clients["alice"].post(f"/v1/jobs/{job_id}/evaluate", json={"data": {"type": "dataset",
                                                                                  "id": dataset_id}})
    assert alices_eval.status_code == 200 and alices_eval.json()["rows"] == 30


def test_a_model_cached_for_its_tenant_is_still_404_for_another(secured, alice_objects):
    _, clients = secured
    job_id = alice_objects[0]
    url, body = f"/v1/jobs/{job_id}/predict", {"x": [[0.1, 0.2]]}
    first = clients["alice"].post(url, json=body)
    cached = clients["alice2"].post(url, json=body)   # the same tenant, another key
    assert first.status_code == cached.status_code == 200 and cached.json() == first.json()
    assert cached.headers["x-model-cache"] == "hit"
    for bob_body in (body, {"x": [[0.1, 0.2, 0.3]]}, {"data": {"type": "spirals", "n_samples": 9}}):
        path = url if "x" in bob_body else f"/v1/jobs/{job_id}/evaluate"
        refused = clients["bob"].post(path, json=bob_body)
        assert refused.status_code == 404 and refused.json() == {"detail": f"job {job_id} not found"}


def test_live_views_need_the_tenants_key_and_metrics_an_admin(secured, alice_objects):
    server, clients = secured
    job_id, *_ = alice_objects
    received = collect(clients["alice"], job_id)
    assert received[0].event == "status" and received[-1].event == "end"
    assert clients["alice2"].get(f"/v1/jobs/{job_id}/metrics/series").status_code == 200
    _assert_unauthorized(server.client.get(f"/v1/jobs/{job_id}/events"))
    assert server.client.get("/ui/").status_code == 200  # the page itself; its data needs a key
    assert server.client.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
    _assert_unauthorized(server.client.get("/metrics"))
    assert clients["bob"].get("/metrics").status_code == 403  # counts span every tenant
    assert clients["root"].get("/metrics").status_code == 200


def test_lists_are_per_tenant_and_admins_see_every_tenant(secured, alice_objects):
    _, clients = secured
    job_id, dataset_id, _ = alice_objects
    bobs_job = clients["bob"].post("/v1/jobs", json=spirals(seed=5)).json()
    assert bobs_job["tenant"] == "bob"

    def listed(name: str) -> tuple[set, set]:
        jobs = {j["id"] for j in clients[name].get("/v1/jobs?limit=500").json()["items"]}
        return jobs, {d["id"] for d in clients[name].get("/v1/datasets").json()}

    bob_jobs, bob_datasets = listed("bob")
    alice_jobs, alice_datasets = listed("alice")
    admin_jobs, admin_datasets = listed("root")
    assert bobs_job["id"] in bob_jobs and job_id not in bob_jobs and not bob_datasets & {dataset_id}
    assert job_id in alice_jobs and bobs_job["id"] not in alice_jobs and dataset_id in alice_datasets
    assert {job_id, bobs_job["id"]} <= admin_jobs and dataset_id in admin_datasets
    assert clients["root"].get(f"/v1/jobs/{job_id}/spec").status_code == 200
    assert {j["tenant"] for j in clients["root"].get("/v1/jobs?limit=500").json()["items"]} >= {"alice", "bob"}


def test_idempotency_keys_are_per_tenant(secured):
    _, clients = secured
    headers = {"Idempotency-Key": "shared-key-1"}
    first = clients["alice"].post("/v1/jobs", json=spirals(seed=11), headers=headers)
    other = clients["bob"].post("/v1/jobs", json=spirals(seed=12), headers=headers)
    assert (first.status_code, other.status_code) == (202, 202)
    assert first.json()["id"] != other.json()["id"]
    replay = clients["alice2"].post("/v1/jobs", json=spirals(seed=11), headers=headers)
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]


def test_serve_refuses_to_start_on_all_interfaces_without_a_key(tmp_path):
    done = subprocess.run([sys.executable, "-m", "service.cli", "serve", "--host", "0.0.0.0",
                           "--port", str(free_port()), "--data-dir", str(tmp_path), "--workers",
                           "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needle-service keys create" in done.stderr and "--admin" in done.stderr


def test_an_admin_key_from_the_environment_is_created_at_start(tmp_path):
    token = "a-deployment-secret-of-at-least-32-characters"
    server = Server(tmp_path, workers=0, env={**AUTH_ENV, "NEEDLE_ADMIN_KEY": token}).start()
    try:
        _assert_unauthorized(server.client.get("/v1/jobs"))
        with server.client_for(token) as admin:
            assert admin.get("/v1/jobs").status_code == 200
            assert admin.post("/v1/jobs", json=spirals()).json()["tenant"] == "admin"
        assert "env-admin-" in server.keys_command("list").stdout
    finally:
        server.stop()


def test_another_tenants_sweep_is_404_and_its_trials_are_the_creators(secured):
    from .specs import sweep_base
    server, clients = secured
    sweep = clients["alice"].post("/v1/sweeps", json={"base": sweep_base(epochs=1), "parameters": {
        "optimizer.lr": {"values": [0.01, 0.02]}}}).json()
    trial_job = sweep["trials"][0]["job_id"]
    assert clients["alice"].get(f"/v1/jobs/{trial_job}").json()["tenant"] == "alice"
    for method, path in (("GET", f"/v1/sweeps/{sweep['id']}"), ("POST", f"/v1/sweeps/{sweep['id']}/cancel"),
                         ("DELETE", f"/v1/sweeps/{sweep['id']}"), ("GET", f"/v1/jobs/{trial_job}")):
        assert clients["bob"].request(method, path).status_code == 404, (method, path)
    assert sweep["id"] not in [s["id"] for s in clients["bob"].get("/v1/sweeps").json()["items"]]
    assert sweep["id"] in [s["id"] for s in clients["root"].get("/v1/sweeps").json()["items"]]
    assert clients["alice2"].get(f"/v1/sweeps/{sweep['id']}").status_code == 200  # same tenant
    by_sweep = lambda who: [j["id"] for j in clients[who].get(
        "/v1/jobs", params={"sweep_id": sweep["id"]}).json()["items"]]
    trials = [t["job_id"] for t in sweep["trials"]][::-1]
    assert by_sweep("alice") == trials and by_sweep("root") == trials and by_sweep("bob") == []
    clients["alice"].post(f"/v1/sweeps/{sweep['id']}/cancel")


def test_every_route_with_an_id_answers_another_tenant_as_if_the_object_did_not_exist(
        secured, alice_objects):
    """Walks openapi.json, so routes added later are covered too: for bob, alice's object and an
    id that never existed get the same status (404, or 422 for a missing body) and message."""
    server, clients = secured
    ids = dict(zip(("job_id", "dataset_id", "sweep_id"), alice_objects))
    unknown = {name: "0" * 32 for name in ids}
    checked = 0
    for path, operations in server.client.get("/openapi.json").json()["paths"].items():
        names = re.findall(r"{(\w+)}", path)
        if not names:
            continue
        assert set(names) <= set(ids), f"{path}: give the test an object of tenant alice for {names}"
        for method in operations:
            theirs = clients["bob"].request(method, path.format(**ids), timeout=10)
            nobodys = clients["bob"].request(method, path.format(**unknown), timeout=10)
            assert theirs.status_code in (404, 422), (method, path, theirs.status_code, theirs.text)
            scrub = lambda response, values: re.sub("|".join(values), "<id>", response.text)  # noqa: E731
            assert (theirs.status_code, scrub(theirs, ids.values())) == \
                (nobodys.status_code, scrub(nobodys, unknown.values())), (method, path)
            checked += 1
    assert checked >= 12
