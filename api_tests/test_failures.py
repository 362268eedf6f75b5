"""Jobs that do not end well: cancelled while running, and diverging to NaN."""
import re

import numpy as np

from .specs import long_teacher, spirals


def test_cancel_a_running_job_keeps_its_metrics(server):
    # 150 epochs x 63 steps stays under the 10,000-point metric budget: every step is a point
    job_id = server.submit(long_teacher(epochs=150))["id"]
    server.wait_until(job_id, lambda job: job["status"] == "running" and
                      job["progress"]["step"] > 50, what="the long job to run a while")
    response = server.client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 200
    job = server.finish(job_id, timeout=30)
    assert job["status"] == "cancelled"
    assert 50 < job["progress"]["step"] < job["progress"]["steps"]
    points = server.client.get(f"/v1/jobs/{job_id}/metrics").json()["points"]
    assert len([p for p in points if p["kind"] == "step"]) >= 50
    assert server.client.post(f"/v1/jobs/{job_id}/cancel").status_code == 409
    assert server.client.delete(f"/v1/jobs/{job_id}").status_code == 204


def test_divergence_fails_cleanly_naming_the_step_and_the_next_job_succeeds(server):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 4)) * 1000).round(1).tolist()  # unnormalised on purpose
    spec = {"model": {"type": "sequential", "layers": [
        {"type": "linear", "in_features": 4, "out_features": 16}, {"type": "relu"},
        {"type": "linear", "in_features": 16, "out_features": 2}]},
        "optimizer": {"type": "sgd", "lr": 1e6},
        "data": {"type": "inline", "x": x, "y": rng.integers(0, 2, 64).tolist()},
        "training": {"epochs": 50, "batch_size": 8}}
    job = server.finish(server.submit(spec)["id"])
    assert job["status"] == "failed"
    assert re.search(r"(nan|inf).* step \d+", job["error"]), job["error"]
    assert job["progress"]["step"] < job["progress"]["steps"]
    assert server.train(spirals(seed=9, epochs=1))["status"] == "succeeded"
