"""The torch-layout export loads strictly into an equivalent PyTorch module and gives the same logits."""
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.numpy import load as st_load  # noqa: E402

from service.jobs.results import export_parameters, predict  # noqa: E402
from tests.service.test_results import MLP, SEQUENTIAL, trained  # noqa: E402


class Residual(torch.nn.Module):
    """fn(x) + x, with the attribute name needle uses (so keys read `fn.`)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def torch_layer(spec):
    kind = spec["type"]
    if kind == "linear":
        return torch.nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"])
    if kind == "batchnorm1d":
        return torch.nn.BatchNorm1d(spec["dim"], eps=spec["eps"], momentum=spec["momentum"])
    if kind == "layernorm1d":
        return torch.nn.LayerNorm(spec["dim"], eps=spec["eps"])
    if kind == "dropout":
        return torch.nn.Dropout(spec["p"])
    if kind == "residual":
        return Residual(torch.nn.Sequential(*map(torch_layer, spec["layers"])))
    if kind == "sequential":
        return torch.nn.Sequential(*map(torch_layer, spec["layers"]))
    return {"relu": torch.nn.ReLU, "identity": torch.nn.Identity, "flatten": torch.nn.Flatten}[kind]()


def torch_mlp_resnet(spec):
    h, half = spec["hidden_dim"], spec["hidden_dim"] // 2
    norm = torch.nn.BatchNorm1d if spec["norm"] == "batchnorm" else torch.nn.LayerNorm
    blocks = [torch.nn.Sequential(Residual(torch.nn.Sequential(
        torch.nn.Linear(h, half), norm(half), torch.nn.ReLU(), torch.nn.Dropout(spec["drop_prob"]),
        torch.nn.Linear(half, h), norm(h))), torch.nn.ReLU()) for _ in range(spec["num_blocks"])]
    return torch.nn.Sequential(torch.nn.Linear(spec["in_features"], h), torch.nn.ReLU(), *blocks,
                               torch.nn.Linear(h, spec["num_classes"]))


def torch_model(model_spec):
    if model_spec["type"] == "mlp_resnet":
        return torch_mlp_resnet(model_spec)
    return torch.nn.Sequential(*map(torch_layer, model_spec["layers"]))


@pytest.mark.parametrize("model_spec,fmt", [(SEQUENTIAL, "safetensors"), (MLP, "npz")],
                         ids=["sequential-safetensors", "mlp_resnet-npz"])
def test_torch_layout_loads_strictly_and_gives_the_same_logits(model_spec, fmt):
    job, blob, _ = trained(model_spec)
    body, _ = export_parameters(job, blob, fmt, "torch")
    if fmt == "safetensors":
        arrays = st_load(body)
    else:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    module = torch_model(job.spec["model"])
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)
    module.eval()
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    with torch.no_grad():
        torch_logits = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(torch_logits, np.array(predict(job, blob, x)["logits"]), rtol=1e-4, atol=1e-5)
