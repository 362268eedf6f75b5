"""The benchmark's numpy floor does needle's work: the same losses, parameters and statistics, bit for bit."""
import importlib.util
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest

import needle as ndl

FLOOR_PATH = Path(__file__).resolve().parents[2] / "bench" / "mlp_resnet_floor.py"


def _floor_module():
    spec = importlib.util.spec_from_file_location("mlp_resnet_floor", FLOOR_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("capture_on", [True, False])
def test_floor_matches_needle_bit_for_bit(capture_on):
    rng = np.random.default_rng(0)
    x = rng.random((95, 20), dtype=np.float32)  # 95 rows: the last batch is partial
    y = rng.integers(0, 4, 95).astype(np.uint8)
    np.random.seed(3)
    model = ndl.models.MLPResNet(20, 16, num_blocks=2, num_classes=4, drop_prob=0.2)
    floor = _floor_module().FloorMLPResNet(model.state_dict(), 2, 0.2, lr=0.01, weight_decay=0.01)
    opt = ndl.optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)
    loader = ndl.data.DataLoader(ndl.data.NDArrayDataset(x, y), batch_size=10, shuffle=True)
    needle_losses = []
    np.random.seed(7)
    with (ndl.capture.disabled() if not capture_on else nullcontext()):
        for _ in range(2):
            for xb, yb in loader:
                opt.reset_grad()
                loss = ndl.nn.SoftmaxLoss()(model(xb), yb)
                loss.backward()
                opt.step()
                needle_losses.append(float(loss.numpy()))
    np.random.seed(7)
    floor_losses = floor.epoch(x, y, 10) + floor.epoch(x, y, 10)
    assert needle_losses == floor_losses
    state = model.state_dict()
    assert np.array_equal(floor.w[0], state["0.weight"])
    assert np.array_equal(floor.running[1][3], state["3.0.fn.5.running_var"])
