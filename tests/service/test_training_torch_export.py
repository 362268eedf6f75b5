"""The torch-layout export loads strictly into an equivalent PyTorch module and gives the same logits."""
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.numpy import load as st_load  # noqa: E402

from service.client.torch_twin import from_model_spec  # noqa: E402
from service.jobs.results import export_parameters, predict  # noqa: E402
from tests.service.test_results import MLP, SEQUENTIAL, trained  # noqa: E402


ACTIVATION_STACK = {"type": "sequential", "layers": [
    {"type": "linear", "in_features": 3, "out_features": 8}, {"type": "leaky_relu", "negative_slope": 0.2},
    {"type": "linear", "in_features": 8, "out_features": 8}, {"type": "gelu"},
    {"type": "linear", "in_features": 8, "out_features": 8}, {"type": "silu"},
    {"type": "linear", "in_features": 8, "out_features": 8}, {"type": "tanh"},
    {"type": "linear", "in_features": 8, "out_features": 8}, {"type": "sigmoid"},
    {"type": "linear", "in_features": 8, "out_features": 4}]}


@pytest.mark.parametrize("model_spec,fmt", [(SEQUENTIAL, "safetensors"), (MLP, "npz"),
                                            (ACTIVATION_STACK, "npz"), ({**MLP, "activation": "gelu"}, "npz")],
                         ids=["sequential-safetensors", "mlp_resnet-npz", "activations-npz", "mlp_resnet-gelu"])
def test_torch_layout_loads_strictly_and_gives_the_same_logits(model_spec, fmt):
    job, blob, _ = trained(model_spec)
    body, _ = export_parameters(job, blob, fmt, "torch")
    if fmt == "safetensors":
        arrays = st_load(body)
    else:
        with np.load(io.BytesIO(body), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    module = from_model_spec(job.spec["model"])
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)
    module.eval()
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    with torch.no_grad():
        torch_logits = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(torch_logits, np.array(predict(job, blob, x)["logits"]), rtol=1e-4, atol=1e-5)
