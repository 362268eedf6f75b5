"""Quotas, rate limits, priorities and fair claims over HTTP: 20 concurrent submissions against a
quota of 3 create exactly 3 jobs; a tenant with 50 queued jobs does not starve another's."""
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pytest

from tests.pg import create_schema, postgres_url

from .server import Server, wait_for
from .specs import long_teacher, spirals
from .test_datasets import npz_bytes

AUTH_ENV = {"NEEDLE_AUTH": "required"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def store_env(request) -> dict[str, str]:
    """The server's store: embedded SQLite, or a throwaway PostgreSQL schema."""
    if request.param == "sqlite":
        return AUTH_ENV
    url, drop = create_schema(postgres_url("the quota and fairness api_tests on PostgreSQL"))
    request.addfinalizer(drop)
    return {**AUTH_ENV, "NEEDLE_DATABASE_URL": url}


@pytest.fixture(scope="module")
def queue_only(tmp_path_factory, store_env):
    """A server that requires keys and trains nothing (jobs stay queued)."""
    server = Server(tmp_path_factory.mktemp("quota"), workers=0, env=store_env)
    keys = {"three": server.create_key("three", "--max-active-jobs", "3"),
            "small": server.create_key("small", "--max-dataset-bytes", "5000"),
            "slow": server.create_key("slow", "--rate-limit", "2"),
            "boss": server.create_key("boss", "--max-priority", "5"),
            "capped": server.create_key("capped", "--max-job-cost", "1e8")}
    yield from server.serving_keys(keys)


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory, store_env):
    """A server with keys and a single worker, so the claim order is observable."""
    server = Server(tmp_path_factory.mktemp("fair"), workers=1, env=store_env)
    keys = {name: server.create_key(name, "--max-priority", "5") for name in ("a", "b")}
    yield from server.serving_keys(keys)


def test_20_concurrent_submissions_against_a_quota_of_3_create_exactly_3(queue_only):
    _, clients = queue_only
    client = clients["three"]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda i: client.post("/v1/jobs", json=spirals(seed=i)), range(20)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 3 + [429] * 17, codes
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["Retry-After"]) >= 1 and "quota is 3" in refused.json()["detail"]
    assert len(client.get("/v1/jobs").json()["items"]) == 3
    # cancelling one frees a slot
    first = next(r.json()["id"] for r in responses if r.status_code == 202)
    assert client.post(f"/v1/jobs/{first}/cancel").status_code == 200
    assert client.post("/v1/jobs", json=spirals(seed=99)).status_code == 202
    assert client.post("/v1/jobs", json=spirals(seed=100)).status_code == 429


def test_dataset_storage_quota_is_a_413_with_a_clear_message(queue_only):
    _, clients = queue_only
    rows = np.random.default_rng(0).normal(size=(100, 2))
    data = npz_bytes(x=rows, y=np.arange(100) % 2)
    upload = lambda: clients["small"].post("/v1/datasets", files={"file": ("d.npz", data)})  # noqa: E731
    first = upload()
    assert first.status_code == 201, first.text
    assert 2 * first.json()["size_bytes"] <= 5000 < 3 * first.json()["size_bytes"]  # ~2.1 kB stored
    assert upload().status_code == 201
    refused = upload()
    assert refused.status_code == 413
    assert "quota is 5000 bytes" in refused.json()["detail"]
    assert len(clients["small"].get("/v1/datasets").json()) == 2
    assert clients["small"].delete(f"/v1/datasets/{first.json()['id']}").status_code == 204
    assert upload().status_code == 201


def test_rate_limit_allows_bursts_of_r_then_429_with_retry_after(queue_only):
    _, clients = queue_only
    codes = [clients["slow"].get("/v1/jobs").status_code for _ in range(6)]
    assert codes[:2] == [200, 200] and 429 in codes[2:], codes
    refused = clients["slow"].get("/v1/jobs")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    wait_for(lambda: clients["slow"].get("/v1/jobs").status_code == 200, 10, "a refilled token")
    assert clients["three"].get("/v1/jobs").status_code == 200  # other keys are not limited


def test_priority_above_the_keys_maximum_is_a_422_on_priority(queue_only):
    _, clients = queue_only
    too_high = clients["three"].post("/v1/jobs", json={**spirals(), "priority": 1})
    assert too_high.status_code == 422
    assert too_high.json()["detail"][0]["loc"] == ["body", "priority"]
    accepted = clients["boss"].post("/v1/jobs", json={**spirals(), "priority": 5})
    assert accepted.status_code == 202 and accepted.json()["priority"] == 5
    assert clients["boss"].post("/v1/jobs", json={**spirals(), "priority": 6}).status_code == 422
    lowered = clients["boss"].post("/v1/jobs", json={**spirals(), "priority": -3})
    assert lowered.status_code == 202 and lowered.json()["priority"] == -3  # yielding is allowed


def test_a_job_over_the_keys_max_cost_is_a_422_saying_by_how_much(queue_only):
    _, clients = queue_only
    refused = clients["capped"].post("/v1/jobs", json=long_teacher(epochs=50))
    assert refused.status_code == 422
    (issue,) = refused.json()["detail"]
    assert issue["loc"] == ["body", "training"] and "max job cost of 1e+08 FLOPs" in issue["msg"]
    assert clients["capped"].post("/v1/jobs", json=spirals(epochs=1)).status_code == 202
    assert clients["boss"].post("/v1/jobs", json=long_teacher(epochs=50)).status_code == 202


def _started(job: dict) -> datetime | None:
    return None if job["started_at"] is None else datetime.fromisoformat(job["started_at"])


def _next_started_after(server_client, jobs: list[dict], moment: datetime) -> str:
    """Among `jobs`, the id of the first one to start after `moment` (waits for it)."""
    def first_started():
        fresh = [server_client(job["id"]) for job in jobs]
        started = [(s, job["id"]) for job in fresh if (s := _started(job)) and s > moment]
        return min(started)[1] if started else None
    return wait_for(first_started, 120, "a job to start", interval=0.2)


def test_a_tenant_with_50_queued_jobs_does_not_starve_another(one_worker):
    _, clients = one_worker
    a_jobs = [clients["a"].post("/v1/jobs", json=long_teacher(epochs=3, seed=i)).json()
              for i in range(50)]
    wait_for(lambda: clients["a"].get(f"/v1/jobs/{a_jobs[0]['id']}").json()["status"] != "queued",
             60, "a's first job to start")
    b_job = clients["b"].post("/v1/jobs", json=spirals()).json()
    submitted = datetime.fromisoformat(b_job["created_at"])
    get = lambda job_id: clients["a" if job_id != b_job["id"] else "b"].get(f"/v1/jobs/{job_id}").json()  # noqa: E731
    try:
        assert _next_started_after(get, [*a_jobs, b_job], submitted) == b_job["id"]
    finally:
        for job in a_jobs:
            clients["a"].post(f"/v1/jobs/{job['id']}/cancel")


def test_a_higher_priority_job_runs_before_older_ones(one_worker):
    _, clients = one_worker
    a = clients["a"]
    busy = a.post("/v1/jobs", json=long_teacher(epochs=3)).json()
    wait_for(lambda: a.get(f"/v1/jobs/{busy['id']}").json()["status"] != "queued", 60,
             "the first job to start")
    older = [a.post("/v1/jobs", json=long_teacher(epochs=1, seed=i)).json() for i in range(5)]
    urgent = a.post("/v1/jobs", json={**spirals(), "priority": 5}).json()
    submitted = datetime.fromisoformat(urgent["created_at"])
    get = lambda job_id: a.get(f"/v1/jobs/{job_id}").json()  # noqa: E731
    try:
        assert _next_started_after(get, [*older, urgent], submitted) == urgent["id"]
    finally:
        for job in [busy, *older]:
            a.post(f"/v1/jobs/{job['id']}/cancel")
