"""Downloaded parameters reproduce /predict: in a fresh needle model, in an equivalent PyTorch
module (torch layout, strict load), and by hand with numpy for BatchNorm's running statistics."""
import json

import numpy as np
import pytest
from safetensors.numpy import load as load_safetensors

from .specs import batchnorm_stack, spirals

ROWS = np.random.default_rng(42).normal(size=(7, 2)).round(3)  # (7, 2)


@pytest.fixture(scope="module")
def resnet_job(server):
    return server.train(spirals(seed=3, epochs=3))


@pytest.fixture(scope="module")
def batchnorm_job(server):
    return server.train(batchnorm_stack(seed=4))


def predict(server, job_id: str, rows) -> dict:
    response = server.client.post(f"/v1/jobs/{job_id}/predict", json={"x": np.asarray(rows).tolist()})
    assert response.status_code == 200, response.text
    return response.json()


def download(server, job_id: str, **params) -> bytes:
    response = server.client.get(f"/v1/jobs/{job_id}/parameters", params=params)
    assert response.status_code == 200, response.text
    return response.content


def test_safetensors_in_a_fresh_needle_model_predict_the_same(server, resnet_job):
    import needle
    from needle import nn
    from needle.models import MLPResNet
    model_spec = resnet_job["spec"]["model"]
    model = MLPResNet(2, hidden_dim=model_spec["hidden_dim"], num_blocks=model_spec["num_blocks"],
                      num_classes=3, norm=nn.BatchNorm1d, drop_prob=model_spec["drop_prob"])
    model.load_state_dict(load_safetensors(download(server, resnet_job["id"],
                                                    format="safetensors")))
    model.eval()
    logits = model(needle.Tensor(ROWS.astype(np.float32))).numpy()  # (7, 3)
    np.testing.assert_allclose(logits, predict(server, resnet_job["id"], ROWS)["logits"],
                               rtol=1e-5, atol=1e-6)


def test_torch_layout_loads_strictly_and_predicts_the_same(server, resnet_job):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load as load_torch

    from service.client.torch_twin import mlp_resnet

    spec = resnet_job["spec"]["model"]
    module = mlp_resnet(2, spec["hidden_dim"], spec["num_blocks"], 3, spec["drop_prob"])
    state = load_torch(download(server, resnet_job["id"], format="safetensors", layout="torch"))
    module.load_state_dict(state, strict=True)
    module.eval()
    with torch.no_grad():
        logits = module(torch.tensor(ROWS, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(logits, predict(server, resnet_job["id"], ROWS)["logits"],
                               rtol=1e-4, atol=1e-5)


def test_batchnorm_predicts_each_row_independently_of_the_batch(server, batchnorm_job):
    together = predict(server, batchnorm_job["id"], ROWS)["logits"]
    alone = [predict(server, batchnorm_job["id"], ROWS[i:i + 1])["logits"][0]
             for i in range(len(ROWS))]
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-6)


def test_downloaded_running_statistics_are_the_ones_predict_used(server, batchnorm_job):
    params = {name: np.array(entry["data"], dtype=np.float32).reshape(entry["shape"])
              for name, entry in json.loads(download(server, batchnorm_job["id"])).items()}
    bn = batchnorm_job["spec"]["model"]["layers"][1]
    assert not np.allclose(params["1.running_mean"], 0)  # training moved them off their init
    hidden = ROWS @ params["0.weight"] + params["0.bias"]  # (7, 16)
    normalised = (hidden - params["1.running_mean"]) / np.sqrt(params["1.running_var"] + bn["eps"])
    activated = np.maximum(normalised * params["1.weight"] + params["1.bias"], 0)
    logits = activated @ params["3.weight"] + params["3.bias"]  # (7, 3)
    np.testing.assert_allclose(logits, predict(server, batchnorm_job["id"], ROWS)["logits"],
                               rtol=1e-4, atol=1e-5)
