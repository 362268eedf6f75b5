"""GET /v1/jobs/{id}/metrics/series: a display-sized curve that keeps the extremes."""
from .specs import long_teacher


def test_series_is_downsampled_keeping_extremes_and_epoch_points(server):
    job_id = server.train(long_teacher(epochs=10))["id"]
    points = server.client.get(f"/v1/jobs/{job_id}/metrics").json()["points"]
    steps = {p["step"]: p["values"]["loss"] for p in points if p["kind"] == "step"}
    series = server.client.get(f"/v1/jobs/{job_id}/metrics/series", params={"points": 100}).json()
    assert series["total"] == len(steps) == 630 and series["downsampled"]
    assert len(series["step"]) <= 100 and series["step"] == sorted(series["step"])
    assert all(steps[s] == v for s, v in zip(series["step"], series["values"]))  # real points
    assert max(series["values"]) == max(steps.values())
    assert min(series["values"]) == min(steps.values())
    assert series["epochs"] == [p for p in points if p["kind"] == "epoch"]
    assert series["last_seq"] == points[-1]["seq"]
    full = server.client.get(f"/v1/jobs/{job_id}/metrics/series", params={"points": 1000}).json()
    assert not full["downsampled"] and full["step"] == list(steps) and full["values"] == list(steps.values())


def test_series_of_unknown_job_is_404_and_points_are_bounded(server):
    assert server.client.get("/v1/jobs/nope/metrics/series").status_code == 404
    job_id = server.train(long_teacher(epochs=1))["id"]
    response = server.client.get(f"/v1/jobs/{job_id}/metrics/series", params={"points": 5})
    assert response.status_code == 422
