"""Datasets over HTTP: upload (npz and JSON), list, get, delete, limits, malformed uploads, and a
job trained on an uploaded dataset."""
import io

import numpy as np
import pytest


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def upload(server, data: bytes, name: str | None = None):
    return server.client.post("/v1/datasets", files={"file": ("data.npz", data)},
                              data={"name": name} if name else None)


def test_upload_list_get_delete(api_only):
    x = np.random.default_rng(0).normal(size=(40, 5))
    created = upload(api_only, npz_bytes(x=x, y=np.arange(40) % 4), name="blobs")
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["n_rows"], dataset["n_features"], dataset["n_classes"]) == (40, 5, 4)
    from_json = api_only.client.post("/v1/datasets", json={"name": "tiny", "x": [[0.0, 1.0]],
                                                           "y": [1]})
    assert from_json.status_code == 201 and from_json.json()["n_classes"] == 2
    listed = [d["id"] for d in api_only.client.get("/v1/datasets").json()]
    assert listed[:2] == [from_json.json()["id"], dataset["id"]]
    assert api_only.client.get(f"/v1/datasets/{dataset['id']}").json()["name"] == "blobs"
    assert api_only.client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert api_only.client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert dataset["id"] not in [d["id"] for d in api_only.client.get("/v1/datasets").json()]


def test_oversized_upload_is_a_413(api_only):
    big = npz_bytes(x=np.zeros((5000, 4)), y=np.zeros(5000, dtype=np.int64))  # > 100 kB cap
    assert upload(api_only, big).status_code == 413


@pytest.mark.parametrize("data", [
    b"PK\x03\x04 definitely not a zip",
    npz_bytes(features=np.zeros((3, 2)), labels=np.zeros(3, dtype=int)),
    npz_bytes(x=np.zeros(3), y=np.zeros(3, dtype=int)),
    npz_bytes(x=np.zeros((3, 2)), y=np.array([0.0, np.nan, 2.0])),
    npz_bytes(x=np.zeros((3, 2)), y=np.array([0, -2, 1])),
    npz_bytes(x=np.array([[0.0, np.inf]]), y=np.array([0])),
], ids=["not-npz", "missing-keys", "x-1d", "nan-targets", "negative-labels", "non-finite"])
def test_malformed_upload_is_a_422(api_only, data):
    before = api_only.client.get("/v1/datasets").json()
    response = upload(api_only, data)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert api_only.client.get("/v1/datasets").json() == before


def test_job_on_an_uploaded_dataset(server):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 3))
    y = (x[:, 0] > 0).astype(np.int64)
    dataset_id = upload(server, npz_bytes(x=x, y=y)).json()["id"]
    spec = {"model": {"type": "sequential", "layers": [
        {"type": "linear", "in_features": 3, "out_features": 2}]},
        "optimizer": {"type": "adam", "lr": 0.1},
        "data": {"type": "dataset", "id": dataset_id,
                 "validation": {"type": "fraction", "fraction": 0.25}},
        "training": {"epochs": 20, "batch_size": 30}}
    mismatched = {**spec, "model": {"type": "sequential", "layers": [
        {"type": "linear", "in_features": 4, "out_features": 2}]}}
    response = server.client.post("/v1/jobs", json=mismatched)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == [
        "body", "data", "id"]
    job = server.train(spec)
    assert job["progress"]["steps"] == 20 * 3  # 90 training rows in batches of 30
    assert job["result"]["val_error"] < 0.2  # a linearly separable problem
