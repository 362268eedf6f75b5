"""Job spec validation: defaults, exact error locations, and the shared planning helpers."""
import math

import pytest
from pydantic import ValidationError

from service.specs import (JobSpec, TrainingSpec, count_parameters, model_widths, planned_steps,
                           validation_split_sizes)

LINEAR = {"type": "linear", "in_features": 2, "out_features": 8}


def spec(model=None, data=None, **extra):
    """A small valid job spec with overrides."""
    body = {"model": model or {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 8,
                               "num_blocks": 1, "num_classes": 3},
            "data": data or {"type": "spirals", "n_samples": 30}}
    body.update(extra)
    return body


def error_locs(body):
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(body)
    return [tuple(e["loc"]) for e in info.value.errors()]


def test_defaults_are_filled_in_the_normalised_spec():
    dumped = JobSpec.model_validate(spec()).model_dump(mode="json")
    assert dumped["optimizer"] == {"type": "sgd", "lr": 0.01, "momentum": 0.0, "weight_decay": 0.0,
                                   "schedule": {"type": "constant", "warmup_steps": 0}}
    assert dumped["training"] == {"epochs": 1, "batch_size": 32, "shuffle": True, "seed": 0,
                                  "stopping": {"max_steps": None, "max_runtime_s": None},
                                  "loss": {"type": "cross_entropy", "label_smoothing": 0.0},
                                  "early_stopping": None, "clip_grad_norm": None, "init_from": None,
                                  "checkpoint_interval_s": None}
    assert dumped["data"]["validation"] is None
    assert dumped["data"]["preprocess"] == {"type": "none"}
    assert dumped["name"] is None and dumped["tags"] == {}
    assert dumped["model"]["norm"] == "batchnorm"
    assert JobSpec.model_validate(dumped).model_dump(mode="json") == dumped


def test_unknown_fields_are_rejected():
    assert ("model", "mlp_resnet", "hidden") in error_locs(
        spec(model={"type": "mlp_resnet", "in_features": 2, "hidden": 3}))


def test_linear_width_mismatch_points_at_the_layer():
    layers = [LINEAR, {"type": "relu"}, {"type": "linear", "in_features": 9, "out_features": 3}]
    assert error_locs(spec(model={"type": "sequential", "layers": layers})) == [
        ("model", "sequential", "layers", 2, "in_features")]


def test_nested_norm_width_mismatch_points_inside_the_residual():
    layers = [LINEAR, {"type": "residual", "layers": [
        {"type": "linear", "in_features": 8, "out_features": 8},
        {"type": "batchnorm1d", "dim": 7}]}, {"type": "linear", "in_features": 8, "out_features": 3}]
    assert ("model", "sequential", "layers", 1, "layers", 1, "dim") in error_locs(
        spec(model={"type": "sequential", "layers": layers}))


def test_residual_that_changes_width_is_rejected():
    layers = [LINEAR, {"type": "residual", "layers": [{"type": "linear", "in_features": 8,
                                                       "out_features": 4}]},
              {"type": "linear", "in_features": 4, "out_features": 3}]
    assert error_locs(spec(model={"type": "sequential", "layers": layers})) == [
        ("model", "sequential", "layers", 1)]


def test_sequential_without_width_bearing_layer_is_rejected():
    assert error_locs(spec(model={"type": "sequential", "layers": [{"type": "relu"}]})) == [
        ("model", "sequential", "layers")]


def test_model_widths_of_a_nested_stack():
    model = JobSpec.model_validate(spec(model={"type": "sequential", "layers": [
        {"type": "sequential", "layers": [LINEAR, {"type": "layernorm1d", "dim": 8}]},
        {"type": "dropout"}, {"type": "linear", "in_features": 8, "out_features": 3}]})).model
    assert model_widths(model) == (2, 3)


def test_inline_rows_must_be_rectangular_finite_and_match_labels():
    ragged = {"type": "inline", "x": [[0.0, 1.0], [1.0]], "y": [0, 1]}
    assert error_locs(spec(data=ragged)) == [("data", "inline", "x", 1)]
    nan = {"type": "inline", "x": [[0.0, 1.0], [1.0, float("nan")]], "y": [0, 1]}
    assert error_locs(spec(data=nan)) == [("data", "inline", "x", 1, 1)]
    short = {"type": "inline", "x": [[0.0, 1.0], [1.0, 2.0]], "y": [0]}
    assert error_locs(spec(data=short)) == [("data", "inline", "y")]


def test_labels_must_fit_the_model_outputs():
    data = {"type": "inline", "x": [[0.0, 1.0]] * 3, "y": [0, 2, 3]}
    assert error_locs(spec(data=data)) == [("data", "inline", "y", 2)]
    assert error_locs(spec(data={"type": "inline", "x": [[0.0, 1.0]], "y": [-1]})) == [
        ("data", "inline", "y", 0)]


def test_feature_width_must_match_the_model_input():
    assert error_locs(spec(data={"type": "teacher", "n_features": 5, "n_classes": 3})) == [
        ("data", "teacher", "n_features")]
    assert error_locs(spec(data={"type": "mnist"})) == [
        ("model", "mlp_resnet", "in_features"), ("model", "mlp_resnet", "num_classes")]


def test_validation_data_is_checked_too():
    data = {"type": "spirals", "validation": {"type": "data", "data": {
        "type": "inline", "x": [[1.0, 2.0, 3.0]], "y": [0]}}}
    assert error_locs(spec(data=data)) == [("data", "spirals", "validation", "data", "data", "inline", "x", 0)]


def test_fraction_must_leave_training_rows():
    data = {"type": "spirals", "n_samples": 1, "validation": {"type": "fraction", "fraction": 0.5}}
    assert error_locs(spec(data=data)) == [("data", "spirals", "validation", "fraction", "fraction")]


@pytest.mark.parametrize("rows, fraction, expected", [(100, 0.2, (80, 20)), (10, 0.01, (9, 1)),
                                                      (7, 0.5, (4, 3))])
def test_validation_split_sizes(rows, fraction, expected):
    assert validation_split_sizes(rows, fraction) == expected


def test_planned_steps_counts_partial_batches_and_caps_at_max_steps():
    training = TrainingSpec(epochs=3, batch_size=32)
    assert planned_steps(100, training) == (3, 12)
    capped = TrainingSpec(epochs=3, batch_size=32, stopping={"max_steps": 5})
    assert planned_steps(100, capped) == (2, 5)
    assert planned_steps(100, TrainingSpec(epochs=3, stopping={"max_steps": 50})) == (3, 12)


def test_count_parameters_of_mlp_resnet_matches_the_formula():
    model = JobSpec.model_validate(spec()).model  # in 2, hidden 8, 1 block, 3 classes
    blocks = (8 * 4 + 4) + 2 * 4 + (4 * 8 + 8) + 2 * 8
    assert count_parameters(model) == (2 * 8 + 8) + blocks + (8 * 3 + 3)


def _torch_module(layers, nn):
    built = []
    for layer in layers:
        kind = layer["type"]
        if kind == "linear":
            built.append(nn.Linear(layer["in_features"], layer["out_features"],
                                   bias=layer.get("bias", True)))
        elif kind == "batchnorm1d":
            built.append(nn.BatchNorm1d(layer["dim"]))
        elif kind == "layernorm1d":
            built.append(nn.LayerNorm(layer["dim"]))
        elif kind in ("sequential", "residual"):
            built.append(_torch_module(layer["layers"], nn))
        else:
            built.append(nn.ReLU())
    return nn.Sequential(*built)


def test_count_parameters_of_a_stack_matches_torch():
    torch = pytest.importorskip("torch")
    layers = [{"type": "linear", "in_features": 5, "out_features": 7, "bias": False},
              {"type": "batchnorm1d", "dim": 7},
              {"type": "residual", "layers": [{"type": "linear", "in_features": 7,
                                               "out_features": 7}, {"type": "layernorm1d",
                                                                    "dim": 7}]},
              {"type": "relu"}, {"type": "linear", "in_features": 7, "out_features": 3}]
    body = spec(model={"type": "sequential", "layers": layers},
                data={"type": "teacher", "n_features": 5, "n_classes": 3})
    expected = sum(p.numel() for p in _torch_module(layers, torch.nn).parameters())
    assert count_parameters(JobSpec.model_validate(body).model) == expected
    assert math.isfinite(expected) and expected > 0


def test_inline_values_must_be_real_numbers_that_fit_float32():
    for bad in (True, "1.0", 1e39):
        data = {"type": "inline", "x": [[0.0, bad]], "y": [0]}
        assert error_locs(spec(data=data)) == [("data", "inline", "x", 0, 1)]
    assert error_locs(spec(data={"type": "inline", "x": [[0.0, 1.0]], "y": [1.0]})) == [
        ("data", "inline", "y", 0)]


def test_generated_teacher_data_is_bounded():
    data = {"type": "teacher", "n_samples": 1_000_000, "n_features": 100, "n_classes": 3}
    model = {"type": "mlp_resnet", "in_features": 100, "hidden_dim": 4, "num_classes": 3}
    assert error_locs(spec(model=model, data=data)) == [("data", "teacher", "n_samples")]
