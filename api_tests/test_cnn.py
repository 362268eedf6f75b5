"""Convolutional networks over HTTP: image-shaped inline data, the mnist source, /predict with
flattened and NCHW rows, and the torch-layout download in the PyTorch twin."""
import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from tests.images import oriented_bars, write_mnist_bars

from .server import Server


def cnn(input_shape: list[int], classes: int = 4, conv_stride: int = 1) -> dict:
    """conv -> batchnorm2d -> relu -> maxpool -> conv -> avgpool -> flatten -> linear."""
    c, h, w = input_shape
    h, w = (h - 1) // conv_stride + 1, (w - 1) // conv_stride + 1  # same padding, k=3
    return {"type": "sequential", "input_shape": input_shape, "layers": [
        {"type": "conv2d", "in_channels": c, "out_channels": 6, "kernel_size": 3,
         "stride": conv_stride},
        {"type": "batchnorm2d", "dim": 6},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "in_channels": 6, "out_channels": 6, "kernel_size": 3, "bias": False},
        {"type": "relu"},
        {"type": "avgpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "linear", "in_features": 6 * (h // 4) * (w // 4), "out_features": classes}]}


@pytest.fixture(scope="module")
def bars_job(server):
    x, y = oriented_bars(480, size=8, seed=5)
    spec = {"model": cnn([1, 8, 8]), "optimizer": {"type": "adam", "lr": 0.01},
            "data": {"type": "inline", "x": x.tolist(), "y": y.tolist(),
                     "validation": {"type": "fraction", "fraction": 0.25}},
            "training": {"epochs": 8, "batch_size": 32, "seed": 1}}
    return server.train(spec, timeout=120)


def test_cnn_learns_image_shaped_inline_data(bars_job):
    assert bars_job["spec"]["data"]["image_shape"] == [1, 8, 8]
    assert bars_job["spec"]["data"]["n_features"] == 64
    assert bars_job["param_count"] == (9 * 6 + 6) + 2 * 6 + 9 * 6 * 6 + (6 * 2 * 2 * 4 + 4)
    assert bars_job["result"]["val_error"] <= 0.05, bars_job["result"]


def _predict(server, job_id: str, x) -> dict:
    response = server.client.post(f"/v1/jobs/{job_id}/predict", json={"x": np.asarray(x).tolist()})
    assert response.status_code == 200, response.text
    return response.json()


def test_predict_takes_flattened_rows_and_nchw_images_alike(server, bars_job):
    x, y = oriented_bars(40, size=8, seed=9)  # (40, 1, 8, 8)
    images = _predict(server, bars_job["id"], x)
    rows = _predict(server, bars_job["id"], x.reshape(40, -1))
    np.testing.assert_array_equal(images["logits"], rows["logits"])
    assert np.mean(np.asarray(images["classes"]) != y) <= 0.1
    wrong = server.client.post(f"/v1/jobs/{bars_job['id']}/predict",
                               json={"x": np.zeros((2, 1, 4, 16)).tolist()})
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "x", 0]


def test_torch_layout_loads_into_the_pytorch_twin_and_predicts_the_same(server, bars_job):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load as load_torch

    from service.client.torch_twin import from_model_spec

    response = server.client.get(f"/v1/jobs/{bars_job['id']}/parameters",
                                 params={"format": "safetensors", "layout": "torch"})
    assert response.status_code == 200, response.text
    state = load_torch(response.content)
    assert tuple(state["0.weight"].shape) == (6, 1, 3, 3)  # (C_out, C_in, K, K)
    module = from_model_spec(bars_job["spec"]["model"])
    module.load_state_dict(state, strict=True)
    module.eval()
    x, _ = oriented_bars(16, size=8, seed=10)
    with torch.no_grad():
        logits = module(torch.tensor(x)).numpy()
    np.testing.assert_allclose(logits, _predict(server, bars_job["id"], x)["logits"],
                               rtol=1e-4, atol=1e-5)
    needle_layout = load_safetensors(server.client.get(
        f"/v1/jobs/{bars_job['id']}/parameters", params={"format": "safetensors"}).content)
    assert needle_layout["0.weight"].shape == (3, 3, 1, 6)  # (K, K, C_in, C_out)


def test_shapes_that_do_not_fit_are_a_422_at_the_exact_field(server):
    x, y = oriented_bars(8, size=8)
    model = cnn([1, 8, 8])
    model["layers"][4]["in_channels"] = 5
    spec = {"model": model, "data": {"type": "inline", "x": x.tolist(), "y": y.tolist()}}
    response = server.client.post("/v1/jobs", json=spec)
    assert response.status_code == 422
    assert ["body", "model", "layers", 4, "in_channels"] in \
        [error["loc"] for error in response.json()["detail"]]
    images_of_another_shape = {"model": cnn([1, 4, 16]), "data": spec["data"]}
    response = server.client.post("/v1/jobs", json=images_of_another_shape)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == \
        [["body", "data", "x", 0]]


def test_uploaded_nchw_dataset_trains_a_cnn(server):
    import io
    x, y = oriented_bars(200, size=8, seed=2)
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    response = server.client.post("/v1/datasets", files={"file": ("bars.npz", buffer.getvalue())})
    assert response.status_code == 201, response.text
    assert response.json()["n_features"] == 64
    job = server.train({"model": cnn([1, 8, 8]), "optimizer": {"type": "adam", "lr": 0.01},
                        "data": {"type": "dataset", "id": response.json()["id"]},
                        "training": {"epochs": 2, "batch_size": 32}}, timeout=120)
    assert job["result"]["train_error"] < 0.75


def test_cnn_on_the_mnist_source(tmp_path_factory):
    mnist_dir = tmp_path_factory.mktemp("mnist")
    write_mnist_bars(mnist_dir, 320, prefix="train", seed=3)
    write_mnist_bars(mnist_dir, 80, prefix="t10k", seed=4)
    server = Server(tmp_path_factory.mktemp("mnist-server"), workers=1,
                    env={"NEEDLE_MNIST_DIR": str(mnist_dir)}).start()
    try:
        spec = {"model": cnn([1, 28, 28], classes=10, conv_stride=2),
                "optimizer": {"type": "adam", "lr": 0.01},
                "data": {"type": "mnist", "validation": {"type": "data",
                                                          "data": {"type": "mnist", "split": "test"}}},
                "training": {"epochs": 4, "batch_size": 32}}
        job = server.train(spec, timeout=180)
        assert job["result"]["val_error"] <= 0.1, job["result"]
        wrong_shape = {**spec, "model": cnn([1, 14, 56], classes=10)}
        response = server.client.post("/v1/jobs", json=wrong_shape)
        assert response.status_code == 422
        assert ["body", "model", "input_shape"] in \
            [error["loc"] for error in response.json()["detail"]]
    finally:
        server.stop()
