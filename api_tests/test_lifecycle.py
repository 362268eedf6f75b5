"""A job's whole life over HTTP, the Swagger examples, and many clients submitting at once."""
import io
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from safetensors.numpy import load as load_safetensors

from service.api.examples import JOB_EXAMPLES, PREDICT_EXAMPLES

from .specs import spirals


def test_submit_poll_metrics_parameters_predict_delete(server):
    submitted = server.client.post("/v1/jobs", json=spirals(epochs=3))
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    assert submitted.headers["location"] == f"/v1/jobs/{job_id}"
    job = server.finish(job_id)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["epoch"] == 3 and job["progress"]["step"] == job["progress"]["steps"]
    assert job["started_at"] and job["finished_at"] and job["attempt"] == 1
    assert set(job["result"]) >= {"train_loss", "train_error", "val_loss", "val_error"}

    points = check_metrics(server, job_id, job)
    assert job["result"]["train_loss"] == points[-1]["values"]["train_loss"]
    arrays = check_parameter_formats(server, job_id)
    trainable = sum(array.size for name, array in arrays.items() if "running" not in name)
    assert trainable == job["param_count"]  # running statistics are state, not parameters

    x = [[0.5, -0.25], [0.0, 1.0], [-1.0, 0.0]]
    prediction = server.client.post(f"/v1/jobs/{job_id}/predict", json={"x": x}).json()
    probabilities = np.array(prediction["probabilities"])  # (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert prediction["classes"] == np.argmax(prediction["logits"], axis=1).tolist()

    assert server.client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert server.client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert server.client.get(f"/v1/jobs/{job_id}/metrics").status_code == 404


def check_metrics(server, job_id: str, job: dict) -> list[dict]:
    """Step and epoch points, and the `after` cursor returning exactly the newer ones."""
    page = server.client.get(f"/v1/jobs/{job_id}/metrics").json()
    points = page["points"]
    steps = [p for p in points if p["kind"] == "step"]
    epochs = [p for p in points if p["kind"] == "epoch"]
    assert len(steps) == job["progress"]["steps"] and len(epochs) == 3
    assert all(np.isfinite(p["values"]["loss"]) for p in steps)
    assert epochs[-1]["values"]["val_loss"] is not None
    seqs = [p["seq"] for p in points]
    assert seqs == sorted(seqs) and page["next_after"] == seqs[-1]
    middle = seqs[len(seqs) // 2]
    newer = server.client.get(f"/v1/jobs/{job_id}/metrics", params={"after": middle}).json()
    assert newer["points"] == [p for p in points if p["seq"] > middle]
    done = server.client.get(f"/v1/jobs/{job_id}/metrics", params={"after": page["next_after"]})
    assert done.json() == {"points": [], "next_after": page["next_after"]}
    return epochs


def check_parameter_formats(server, job_id: str) -> dict[str, np.ndarray]:
    """json, safetensors and npz downloads hold the same arrays."""
    def download(fmt):
        response = server.client.get(f"/v1/jobs/{job_id}/parameters", params={"format": fmt})
        assert response.status_code == 200, response.text
        return response.content
    as_json = {name: np.array(entry["data"], dtype=entry["dtype"]).reshape(entry["shape"])
               for name, entry in json.loads(download("json")).items()}
    as_safetensors = load_safetensors(download("safetensors"))
    with np.load(io.BytesIO(download("npz")), allow_pickle=False) as archive:
        as_npz = {name: archive[name] for name in archive.files}
    assert set(as_json) == set(as_safetensors) == set(as_npz) and "0.weight" in as_json
    for name, array in as_safetensors.items():
        np.testing.assert_array_equal(as_json[name], array)
        np.testing.assert_array_equal(as_npz[name], array)
    return as_safetensors


def test_predict_rejects_wrong_width_and_non_finite_rows(server):
    job_id = server.train(spirals(seed=1, epochs=1))["id"]
    wrong = server.client.post(f"/v1/jobs/{job_id}/predict", json={"x": [[1.0, 2.0, 3.0]]})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "x", 0]
    nan = server.client.post(f"/v1/jobs/{job_id}/predict", content=b'{"x": [[1.0, NaN]]}',
                             headers={"content-type": "application/json"})
    assert nan.status_code == 422 and nan.json()["detail"][0]["loc"] == ["body", "x", 0, 1]


def test_swagger_examples_train_and_predict(server):
    ids = {name: server.submit(example["value"])["id"] for name, example in JOB_EXAMPLES.items()}
    for name, job_id in ids.items():
        job = server.finish(job_id, timeout=60)
        assert job["status"] == "succeeded", (name, job["error"])
    example_rows = PREDICT_EXAMPLES["two_features"]["value"]
    prediction = server.client.post(f"/v1/jobs/{ids['spirals']}/predict", json=example_rows)
    assert prediction.status_code == 200 and len(prediction.json()["classes"]) == 2


def test_twenty_concurrent_submissions_all_finish_once(server):
    seeds = list(range(100, 120))
    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = list(pool.map(lambda seed: server.submit(spirals(seed=seed, epochs=1)), seeds))
    ids = [job["id"] for job in jobs]
    assert len(set(ids)) == 20
    finished = [server.finish(job_id) for job_id in ids]
    assert [job["status"] for job in finished] == ["succeeded"] * 20
    assert [job["spec"]["training"]["seed"] for job in finished] == seeds
    assert all(job["attempt"] == 1 for job in finished)
    listed = server.client.get("/v1/jobs", params={"limit": 500}).json()["items"]
    assert sorted(job["id"] for job in listed if job["id"] in set(ids)) == sorted(ids)


def test_two_thousand_inline_rows_of_784_features_train(server):
    rng = np.random.default_rng(0)
    spec = {"model": {"type": "mlp_resnet", "in_features": 784, "hidden_dim": 8, "num_blocks": 0},
            "data": {"type": "inline", "x": np.round(rng.random((2000, 784)), 2).tolist(),
                     "y": rng.integers(0, 10, 2000).tolist()},
            "training": {"epochs": 1, "batch_size": 100}}
    job = server.train(spec, interval=0.5)  # each poll returns the ~8 MB spec
    assert job["progress"]["steps"] == 20
