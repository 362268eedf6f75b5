"""Client.to_needle and Client.to_torch rebuild the trained model locally: same classes and
probabilities as the server's /predict (within 1e-5) for mlp_resnet with each norm, a nested
sequential with residuals, a CNN, and models trained with standardize or scale preprocessing
(which the local model applies to raw inputs as /predict does)."""
import numpy as np
import pytest

import needle
from service.client import Client
from tests.images import oriented_bars

NESTED = {"type": "sequential", "layers": [
    {"type": "linear", "in_features": 2, "out_features": 16},
    {"type": "residual", "layers": [
        {"type": "linear", "in_features": 16, "out_features": 8},
        {"type": "batchnorm1d", "dim": 8, "momentum": 0.3},
        {"type": "relu"},
        {"type": "dropout", "p": 0.2},
        {"type": "sequential", "layers": [
            {"type": "linear", "in_features": 8, "out_features": 16, "bias": False},
            {"type": "residual", "layers": [{"type": "layernorm1d", "dim": 16},
                                            {"type": "identity"}]}]}]},
    {"type": "flatten"},
    {"type": "relu"},
    {"type": "linear", "in_features": 16, "out_features": 3}]}
CNN = {"type": "sequential", "input_shape": [1, 8, 8], "layers": [
    {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3},
    {"type": "batchnorm2d", "dim": 4},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "stride": 2,
     "bias": False},
    {"type": "avgpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "linear", "in_features": 4, "out_features": 4}]}
BARS_X, BARS_Y = oriented_bars(160, size=8, seed=3)  # (160, 1, 8, 8), (160,)
SPIRALS = {"type": "spirals", "n_samples": 300, "seed": 2}
ROWS = np.random.default_rng(7).normal(size=(64, 2))  # (64, 2)
MLP = {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 2,
       "num_classes": 3, "norm": "batchnorm"}


def offset_clusters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x (n, 2) of 3 Gaussian clusters, feature 0 around 200 (spread 40), feature 1 around -3
    (spread 0.05): far from what a model sees unless standardized; y (n,)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = np.array([[-1.0, 1.0], [1.0, 1.0], [0.0, -1.0]])[y] + rng.normal(scale=0.4, size=(n, 2))
    return x * [40.0, 0.05] + [200.0, -3.0], y


STANDARDIZED_X, STANDARDIZED_Y = offset_clusters(240, seed=5)
PIXELS_X = BARS_X * 255  # (160, 1, 8, 8): 8-bit-like pixel values, trained with scale 1/255
# name -> (model, data, rows to predict)
CASES = {
    "mlp_resnet-batchnorm": ({"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16,
                              "num_blocks": 2, "num_classes": 3, "norm": "batchnorm"},
                             SPIRALS, ROWS),
    "mlp_resnet-layernorm": ({"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16,
                              "num_blocks": 2, "num_classes": 3, "norm": "layernorm"},
                             SPIRALS, ROWS),
    "nested-sequential-residuals": (NESTED, SPIRALS, ROWS),
    "cnn": (CNN, {"type": "inline", "x": BARS_X.tolist(), "y": BARS_Y.tolist()},
            oriented_bars(24, size=8, seed=11)[0]),
    "standardize": (MLP, {"type": "inline", "x": STANDARDIZED_X.tolist(),
                          "y": STANDARDIZED_Y.tolist(), "preprocess": {"type": "standardize"}},
                    offset_clusters(64, seed=6)[0]),
    # flat rows (N, 64) for a model with input_shape [1, 8, 8]: /predict takes both forms
    "scale-cnn-flat-rows": (CNN, {"type": "inline", "x": PIXELS_X.tolist(), "y": BARS_Y.tolist(),
                                  "preprocess": {"type": "scale", "factor": 1 / 255}},
                            (oriented_bars(24, size=8, seed=12)[0] * 255).reshape(24, 64)),
}
PREPROCESSED = ("standardize", "scale-cnn-flat-rows")


@pytest.fixture(scope="module")
def client(server):
    with Client(str(server.client.base_url), poll_interval=0.05) as c:
        yield c


@pytest.fixture(scope="module")
def jobs(client):
    ids = {name: client.submit({"model": model, "optimizer": {"type": "adam", "lr": 0.01},
                                "data": data, "training": {"epochs": 3, "batch_size": 16}})["id"]
           for name, (model, data, _) in CASES.items()}
    for job_id in ids.values():
        assert client.wait(job_id, timeout=120)["status"] == "succeeded"
    return ids


def probabilities(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", CASES)
def test_to_needle_predicts_like_the_server(client, jobs, name):
    rows = CASES[name][2]
    served = client.predict(jobs[name], rows)
    model = client.to_needle(jobs[name])
    assert not model.training
    logits = model(needle.Tensor(rows.astype(np.float32))).numpy().astype(np.float64)
    np.testing.assert_array_equal(logits.argmax(axis=1), served["classes"])
    np.testing.assert_allclose(probabilities(logits), served["probabilities"], atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_to_torch_predicts_like_the_server(client, jobs, name):
    torch = pytest.importorskip("torch")
    rows = CASES[name][2]
    served = client.predict(jobs[name], rows)
    module = client.to_torch(jobs[name])
    assert isinstance(module, torch.nn.Module) and not module.training
    with torch.no_grad():
        logits = module(torch.tensor(rows, dtype=torch.float32)).double().numpy()
    np.testing.assert_array_equal(logits.argmax(axis=1), served["classes"])
    np.testing.assert_allclose(probabilities(logits), served["probabilities"], atol=1e-5)


@pytest.mark.parametrize("name", PREPROCESSED)
def test_the_bare_model_on_raw_inputs_would_predict_otherwise(client, jobs, name):
    """The preprocessing matters for these jobs: `.model` (no preprocessing) is wrong on raw rows,
    so the matches above are the wrapper's doing."""
    rows = CASES[name][2]
    served = client.predict(jobs[name], rows)
    bare = client.to_needle(jobs[name]).model
    batch = rows.astype(np.float32).reshape(len(rows), *CASES[name][0].get("input_shape", [-1]))
    logits = bare(needle.Tensor(batch)).numpy().astype(np.float64)
    assert np.abs(probabilities(logits) - served["probabilities"]).max() > 0.05


def test_the_local_models_take_what_predict_takes(client, jobs):
    """Images (N, C, H, W) and flat rows (N, F) alike; a wrong width is a ValueError naming both
    accepted shapes."""
    torch = pytest.importorskip("torch")
    images = oriented_bars(8, size=8, seed=13)[0] * 255  # (8, 1, 8, 8)
    served = client.predict(jobs["scale-cnn-flat-rows"], images)["probabilities"]
    model, module = (client.to_needle(jobs["scale-cnn-flat-rows"]),
                     client.to_torch(jobs["scale-cnn-flat-rows"]))
    for x in (images, images.reshape(8, 64)):
        logits = model(needle.Tensor(x.astype(np.float32))).numpy().astype(np.float64)
        np.testing.assert_allclose(probabilities(logits), served, atol=1e-5)
        with torch.no_grad():
            logits = module(torch.tensor(x)).double().numpy()
        np.testing.assert_allclose(probabilities(logits), served, atol=1e-5)
    for local in (model, module):
        with pytest.raises(ValueError, match=r"\(N, 64\) or \(N, 1, 8, 8\)"):
            local(np.zeros((2, 63), dtype=np.float32))
    with torch.no_grad():  # in float64 the module still rounds its preprocessed input to float32
        logits = module.double()(torch.tensor(images, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(probabilities(logits), served, atol=1e-5)
