"""GET /metrics: Prometheus text that prometheus-client's own parser reads, job figures that match
the store (as the API lists it), HTTP figures by route template."""
from prometheus_client.parser import text_string_to_metric_families

from service.jobs import Status

from .server import wait_for
from .specs import spirals


def scrape(server) -> dict:
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def samples(family, name: str | None = None) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples
            if name is None or s.name == name}


def test_job_figures_match_the_store(server):
    wait_for(lambda: server.client.get("/readyz").json()["workers_registered"] == 2, 60,
             "both workers to register")  # a loaded machine may take seconds to start one
    for seed in range(3):
        server.train(spirals(seed=seed))
    queued = server.submit(spirals(seed=9, epochs=50))["id"]
    server.client.post(f"/v1/jobs/{queued}/cancel")
    server.finish(queued)
    jobs = server.client.get("/v1/jobs", params={"limit": 500}).json()["items"]
    families = scrape(server)

    by_status = {labels[0][1]: value for labels, value in samples(families["needle_jobs"]).items()}
    expected = {status.value: sum(job["status"] == status.value for job in jobs) for status in Status}
    assert by_status == expected
    assert samples(families["needle_workers_alive"]) == {(): 2.0}
    steps = samples(families["needle_training_steps"], "needle_training_steps_total")
    assert steps == {(): float(sum(job["progress"]["step"] for job in jobs))}

    durations = families["needle_job_duration_seconds"]
    counts = samples(durations, "needle_job_duration_seconds_count")
    ran = [job for job in jobs if job["started_at"] and job["finished_at"]]
    assert counts[(("status", "succeeded"),)] == sum(j["status"] == "succeeded" for j in ran) >= 3
    inf = samples(durations, "needle_job_duration_seconds_bucket")
    assert inf[(("le", "+Inf"), ("status", "succeeded"))] == counts[(("status", "succeeded"),)]


def test_http_requests_are_counted_by_route_template(server):
    job_id = server.train(spirals(seed=4))["id"]
    before = _job_gets(scrape(server))
    for _ in range(3):
        server.job(job_id)
    assert server.client.get("/v1/jobs/nope").status_code == 404
    families = scrape(server)
    assert _job_gets(families) == before + 3
    requests = samples(families["needle_http_requests"], "needle_http_requests_total")
    assert requests[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "404"))] >= 1
    assert not any(dict(labels)["route"].endswith(job_id) for labels in requests)
    latency = samples(families["needle_http_request_duration_seconds"],
                      "needle_http_request_duration_seconds_count")
    assert latency[(("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "200"))] >= 3


def _job_gets(families) -> float:
    requests = samples(families["needle_http_requests"], "needle_http_requests_total")
    return requests.get((("method", "GET"), ("route", "/v1/jobs/{job_id}"), ("status", "200")), 0)
