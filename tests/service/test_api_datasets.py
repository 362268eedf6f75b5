"""Dataset routes in-process: npz and JSON uploads, size limit, malformed uploads, job references."""
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings

MODEL = {"type": "mlp_resnet", "in_features": 3, "hidden_dim": 4, "num_blocks": 0,
         "num_classes": 4}


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, workers=0,
                                        max_upload_bytes=20_000))) as test_client:
        yield test_client


def npz(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def upload(client, data, name=None):
    return client.post("/v1/datasets", files={"file": ("d.npz", data)},
                       data={"name": name} if name else None)


def stored_arrays(client, dataset_id):
    store = client.app.state.store
    with np.load(io.BytesIO(store.get_dataset_blob(dataset_id)), allow_pickle=False) as archive:
        return archive["x"], archive["y"]


def test_npz_upload_is_stored_as_float32_and_int64(client):
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    response = upload(client, npz(x=x, y=np.array([0, 3, 1, 1], dtype=np.int32)), name="four")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert response.headers["location"] == f"/v1/datasets/{dataset['id']}"
    assert (dataset["name"], dataset["n_rows"], dataset["n_features"], dataset["n_classes"]) == (
        "four", 4, 3, 4)
    stored_x, stored_y = stored_arrays(client, dataset["id"])
    assert stored_x.dtype == np.float32 and stored_y.dtype == np.int64
    np.testing.assert_array_equal(stored_x, x.astype(np.float32))
    np.testing.assert_array_equal(stored_y, [0, 3, 1, 1])


def test_json_upload_list_get_delete(client):
    created = client.post("/v1/datasets", json={"name": "j", "x": [[1, 2, 3], [4, 5, 6]],
                                                "y": [0, 2]})
    assert created.status_code == 201, created.text
    dataset_id = created.json()["id"]
    assert [d["id"] for d in client.get("/v1/datasets").json()] == [dataset_id]
    assert client.get(f"/v1/datasets/{dataset_id}").json()["n_classes"] == 3
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 404


def test_image_uploads_keep_their_shape_and_count_c_h_w_features(client):
    images = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)  # (N, C, H, W)
    from_npz = upload(client, npz(x=images, y=np.array([0, 1])))
    from_json = client.post("/v1/datasets", json={"x": images.tolist(), "y": [0, 1]})
    for response in (from_npz, from_json):
        assert response.status_code == 201, response.text
        assert (response.json()["n_rows"], response.json()["n_features"]) == (2, 12)
        stored_x, _ = stored_arrays(client, response.json()["id"])
        np.testing.assert_array_equal(stored_x, images)
    ragged = images.tolist()
    ragged[1][2][0] = [1.0]
    response = client.post("/v1/datasets", json={"x": ragged, "y": [0, 1]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "x", 1, 2, 0]


MALFORMED = {
    "not an archive": b"this is not a zip file",
    "single npy": npy(np.zeros((2, 3))),
    "missing y": npz(x=np.zeros((2, 3))),
    "x is 3-D": npz(x=np.zeros((2, 3, 1)), y=np.zeros(2, dtype=int)),
    "y length": npz(x=np.zeros((2, 3)), y=np.zeros(3, dtype=int)),
    "nan targets": npz(x=np.zeros((2, 3)), y=np.array([0.5, np.nan])),
    "3-D targets": npz(x=np.zeros((2, 3)), y=np.zeros((2, 1, 1))),
    "2-D labels": npz(x=np.zeros((2, 3)), y=np.zeros((2, 2), dtype=int)),
    "negative labels": npz(x=np.zeros((2, 3)), y=np.array([0, -1])),
    "nan features": npz(x=np.array([[0, 1, np.nan]]), y=np.array([0])),
    "object arrays": npz(x=np.array([[1, "a"]], dtype=object), y=np.array([0])),
    "empty x": npz(x=np.zeros((0, 3)), y=np.zeros(0, dtype=int)),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_npz_is_a_422(client, name):
    response = upload(client, MALFORMED[name])
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert client.get("/v1/datasets").json() == []


@pytest.mark.parametrize("body, loc", [
    ({"x": [[1, 2], [3]], "y": [0, 1]}, ["body", "x", 1]),
    ({"x": [[1, 2]], "y": [0, 1]}, ["body", "y"]),
    ({"x": [[1, 2], [3, 4]], "y": [[0.5, 1.0], [0.5]]}, ["body", "y", 1]),
    ({"x": [[1, 2], [3, 4]], "y": [0.5, [1.0]]}, ["body", "y", 1]),
])
def test_malformed_json_dataset_is_a_422(client, body, loc):
    response = client.post("/v1/datasets", json=body)
    assert response.status_code == 422
    assert loc in [error["loc"] for error in response.json()["detail"]]


def test_other_content_types_are_refused(client):
    response = client.post("/v1/datasets", content=b"1,2,3", headers={"content-type": "text/csv"})
    assert response.status_code == 415


def test_oversized_upload_is_a_413(client):
    big = npz(x=np.zeros((1000, 3)), y=np.zeros(1000, dtype=int))
    assert len(big) > 20_000
    response = upload(client, big)
    assert response.status_code == 413
    assert "detail" in response.json()


def test_jobs_check_dataset_width_and_classes(client):
    dataset_id = upload(client, npz(x=np.zeros((6, 3)), y=np.arange(6) % 5)).json()["id"]
    spec = {"model": MODEL, "data": {"type": "dataset", "id": dataset_id}}
    response = client.post("/v1/jobs", json=spec)
    assert response.status_code == 422  # labels up to 4, model has 4 outputs
    assert response.json()["detail"][0]["loc"] == ["body", "data", "id"]
    spec["model"] = {**MODEL, "num_classes": 5}
    accepted = client.post("/v1/jobs", json={**spec, "training": {"batch_size": 4}})
    assert accepted.status_code == 202
    assert accepted.json()["progress"]["steps"] == 2
    wide = {**spec, "model": {**MODEL, "in_features": 4, "num_classes": 5}}
    assert client.post("/v1/jobs", json=wide).status_code == 422


def test_float_targets_are_a_regression_dataset(client):
    response = upload(client, npz(x=np.zeros((3, 2)), y=np.array([[0.5, 1.0], [2.0, 3.0], [0.0, -1.0]])))
    assert response.status_code == 201, response.text
    assert response.json()["n_classes"] == 0 and response.json()["n_rows"] == 3


def test_json_targets_that_are_not_labels_make_a_regression_dataset(client):
    # non-negative integers are class labels; anything else (-1, 0.5, rows) are float targets
    for y in ([-1], [0.5], [[0.5, 2.0]]):
        response = client.post("/v1/datasets", json={"x": [[1, 2]], "y": y})
        assert response.status_code == 201 and response.json()["n_classes"] == 0, response.text
    assert client.post("/v1/datasets", json={"x": [[1, 2]], "y": [3]}).json()["n_classes"] == 4
