"""CNN job specs: shapes traced through every layer (422 locations), parameter counts, image data,
and a CNN run that resumes from a checkpoint bit-identically."""
import numpy as np
import pytest

from service.specs import JobSpec, count_parameters, model_widths
from service.training import checkpoint_from_bytes, checkpoint_to_bytes

from ..images import oriented_bars
from .test_specs import error_locs
from .test_training_loop import assert_same_state, new_run, train


def conv(c_in, c_out, k=3, **extra):
    return {"type": "conv2d", "in_channels": c_in, "out_channels": c_out, "kernel_size": k, **extra}


def cnn(*middle, input_shape=(1, 8, 8), head_in=4 * 4 * 4, classes=4):
    return {"type": "sequential", "input_shape": list(input_shape), "layers": [
        conv(input_shape[0], 4), {"type": "batchnorm2d", "dim": 4}, {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2}, *middle, {"type": "flatten"},
        {"type": "linear", "in_features": head_in, "out_features": classes}]}


def images(n=12, size=8):
    x, y = oriented_bars(n, size=size)
    return {"type": "inline", "x": x.tolist(), "y": y.tolist()}


def job(model, data=None, **extra):
    return {"model": model, "data": data or images(), **extra}


def test_a_cnn_spec_validates_with_its_widths_and_parameter_count():
    spec = JobSpec.model_validate(job(cnn(conv(4, 4, 5, stride=2, bias=False),
                                          {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
                                          head_in=4 * 1 * 1)))
    assert model_widths(spec.model) == (64, 4)
    assert count_parameters(spec.model) == (9 * 4 + 4) + 8 + 25 * 16 + (4 * 4 + 4)
    dumped = spec.model_dump(mode="json")
    assert dumped["model"]["layers"][3] == {"type": "maxpool2d", "kernel_size": 2, "stride": None}
    assert JobSpec.model_validate(dumped).model_dump(mode="json") == dumped


LAYERS = ("model", "sequential", "layers")
BAD_MODELS = {
    "channels": (cnn(conv(3, 4)), [(*LAYERS, 4, "in_channels")]),
    "batchnorm2d dim": (cnn({"type": "batchnorm2d", "dim": 5}), [(*LAYERS, 4, "dim")]),
    "linear on images": ({**cnn(), "layers": cnn()["layers"][:4] + cnn()["layers"][5:]},
                         [(*LAYERS, 4, "in_features")]),
    "head width": (cnn(head_in=10), [(*LAYERS, 5, "in_features")]),
    "window too large": (cnn({"type": "maxpool2d", "kernel_size": 5}), [(*LAYERS, 4, "kernel_size")]),
    "conv after flatten": ({**cnn(), "layers": [{"type": "flatten"}, conv(1, 2)]},
                           [(*LAYERS, 1, "in_channels")]),
    "no input_shape": ({"type": "sequential", "layers": [conv(1, 2), {"type": "flatten"}]},
                       [("model", "sequential", "input_shape")]),
    "images out": ({**cnn(), "layers": cnn()["layers"][:4]}, [(*LAYERS,)]),
    "input_shape length": ({**cnn(), "input_shape": [8, 8]}, [("model", "sequential", "input_shape")]),
    "kernel bound": (cnn(conv(4, 4, 65)), [(*LAYERS, 4, "conv2d", "kernel_size")]),
}


@pytest.mark.parametrize("name", BAD_MODELS)
def test_shapes_that_do_not_fit_name_the_exact_field(name):
    model, locs = BAD_MODELS[name]
    assert error_locs(job(model)) == locs


def test_data_must_match_the_input_shape():
    assert error_locs(job(cnn(input_shape=(1, 4, 16), head_in=4 * 2 * 8))) == \
        [("data", "inline", "x", 0)]
    rows = images()
    rows["x"] = np.asarray(rows["x"]).reshape(12, 64).tolist()  # flat rows of C*H*W are accepted
    JobSpec.model_validate(job(cnn(), rows))
    mnist = {"type": "mnist"}
    JobSpec.model_validate(job(cnn(input_shape=(1, 28, 28), head_in=4 * 14 * 14, classes=10), mnist))
    assert error_locs(job(cnn(input_shape=(4, 14, 14), head_in=4 * 7 * 7, classes=10), mnist)) == \
        [("model", "sequential", "input_shape")]


def test_image_rows_must_all_have_row_0s_shape():
    data = images(3)
    data["x"][2][0][5] = data["x"][2][0][5][:-1]
    assert error_locs(job(cnn(), data)) == [("data", "inline", "x", 2, 0, 5)]
    data = images(3)
    data["x"][1] = np.zeros(64).tolist()
    assert error_locs(job(cnn(), data)) == [("data", "inline", "x", 1)]


def test_a_cnn_run_resumes_from_a_checkpoint_bit_identically():
    spec = JobSpec.model_validate(job(
        cnn(classes=4), images(40),
        optimizer={"type": "adam", "lr": 0.01},
        training={"epochs": 2, "batch_size": 8})).model_dump(mode="json")
    full = new_run(spec)
    full_losses, _ = train(full)
    first = new_run(spec)
    before, _ = train(first, stop_after_step=7)
    resumed = new_run(spec)
    resumed.restore(checkpoint_from_bytes(checkpoint_to_bytes(first.snapshot())))
    after, _ = train(resumed)
    assert before + after == full_losses
    assert_same_state(resumed.state_dict(), full.state_dict())
    assert full.state_dict()["0.weight"].shape == (3, 3, 1, 4)
