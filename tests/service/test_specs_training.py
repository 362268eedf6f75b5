"""Spec checks of issue 10's options: each bad combination is a 422 at the exact field."""
import pytest

from service.specs import JobSpec

from .test_specs import error_locs, spec

VALIDATED = {"type": "spirals", "n_samples": 30, "validation": {"type": "fraction", "fraction": 0.2}}
REGRESSOR = {"type": "sequential", "layers": [{"type": "linear", "in_features": 3, "out_features": 2}]}
LINEAR_DATA = {"type": "linear", "n_samples": 50, "n_features": 3, "n_targets": 2,
               "validation": {"type": "fraction", "fraction": 0.2}}
MSE = {"loss": {"type": "mse"}}


@pytest.mark.parametrize("body, loc", [
    (spec(training={"early_stopping": {"metric": "val_loss"}}), ("training", "early_stopping", "metric")),
    (spec(data=VALIDATED, training={"early_stopping": {"metric": "val_rmse"}}),
     ("training", "early_stopping", "metric")),
    (spec(model=REGRESSOR, data=LINEAR_DATA, training={**MSE, "early_stopping": {"metric": "val_error"}}),
     ("training", "early_stopping", "metric")),
    (spec(training={"early_stopping": {"patience": 0}}), ("training", "early_stopping", "patience")),
    (spec(optimizer={"type": "adam", "lr": 0.01, "schedule": {"type": "cosine", "min_lr": 0.1}}),
     ("optimizer", "adam", "schedule", "cosine", "min_lr")),
    (spec(optimizer={"type": "sgd", "schedule": {"type": "step", "gamma": 0}}),
     ("optimizer", "sgd", "schedule", "step", "gamma")),
    (spec(optimizer={"type": "adamw", "weight_decay": 1.5}), ("optimizer", "adamw", "weight_decay")),
    (spec(training={"clip_grad_norm": 0}), ("training", "clip_grad_norm")),
    (spec(training={"checkpoint_interval_s": -1}), ("training", "checkpoint_interval_s")),
    (spec(training={"loss": {"type": "cross_entropy", "label_smoothing": 1.5}}),
     ("training", "loss", "cross_entropy", "label_smoothing")),
    (spec(training={"loss": {"type": "huber", "delta": 0}}), ("training", "loss", "huber", "delta")),
    (spec(training=MSE), ("data", "spirals", "type")),
    (spec(model=REGRESSOR, data=LINEAR_DATA), ("data", "linear", "type")),
    (spec(model=REGRESSOR, data={**LINEAR_DATA, "n_targets": 3}, training=MSE),
     ("model", "sequential", "layers", 0, "out_features")),
    (spec(model=REGRESSOR, data={"type": "inline", "x": [[1.0, 2.0, 3.0]], "y": [0.5]}, training=MSE),
     ("model", "sequential", "layers", 0, "out_features")),
    (spec(model={"type": "mlp_resnet", "in_features": 2, "num_classes": 3},
          data={"type": "inline", "x": [[1.0, 2.0], [0.0, 1.0]], "y": [0, 1.5]}), ("data", "inline", "y", 1)),
    (spec(model={"type": "mlp_resnet", "in_features": 2, "num_classes": 3},
          data={"type": "inline", "x": [[1.0, 2.0], [0.0, 1.0]], "y": [[0.5], [1.0, 2.0]]}, training=MSE),
     ("data", "inline", "y", 1)),
    (spec(model={"type": "sequential", "layers": [{"type": "linear", "in_features": 2, "out_features": 1}]}),
     ("model", "sequential", "layers", 0, "out_features")),
    (spec(model={"type": "mlp_resnet", "in_features": 2, "activation": "swish"}),
     ("model", "mlp_resnet", "activation")),
    (spec(model={"type": "sequential", "layers": [{"type": "linear", "in_features": 2, "out_features": 3},
                                                  {"type": "leaky_relu", "negative_slope": -1}]}),
     ("model", "sequential", "layers", 1, "leaky_relu", "negative_slope")),
    (spec(data={"type": "spirals", "preprocess": {"type": "scale", "factor": 0}}),
     ("data", "spirals", "preprocess", "scale", "factor")),
    (spec(tags={"a:b": "c"}), ("tags", "a:b", "[key]")),
    (spec(name=""), ("name",)),
    (spec(training={"init_from": {"job": ""}}), ("training", "init_from", "job")),
])
def test_bad_training_options_are_rejected_at_the_field(body, loc):
    assert loc in error_locs(body)


def test_valid_options_normalise_with_defaults():
    dumped = JobSpec.model_validate(spec(
        model=REGRESSOR, data={**LINEAR_DATA, "preprocess": {"type": "standardize"}}, name="r1",
        tags={"team": "ml"}, optimizer={"type": "adamw", "schedule": {"type": "cosine"}},
        training={**MSE, "early_stopping": {"metric": "val_rmse"}, "clip_grad_norm": 1.0})).model_dump(mode="json")
    assert dumped["optimizer"] == {"type": "adamw", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                                   "weight_decay": 0.01, "schedule": {"type": "cosine", "min_lr": 0.0,
                                                                      "warmup_steps": 0}}
    assert dumped["training"]["early_stopping"] == {"metric": "val_rmse", "patience": 5, "min_delta": 0.0,
                                                    "restore_best": True}
    assert dumped["name"] == "r1" and dumped["tags"] == {"team": "ml"}
    assert JobSpec.model_validate(dumped).model_dump(mode="json") == dumped


def test_mnist_defaults_to_scaling_its_pixels():
    dumped = JobSpec.model_validate(spec(model={"type": "mlp_resnet", "in_features": 784},
                                         data={"type": "mnist"})).model_dump(mode="json")
    assert dumped["data"]["preprocess"] == {"type": "scale", "factor": 1 / 255}
    assert JobSpec.model_validate(spec(data={"type": "spirals"})).model_dump(mode="json")["data"][
        "preprocess"] == {"type": "none"}


def test_integer_labels_stay_integers_and_float_targets_floats():
    labels = JobSpec.model_validate(spec(data={"type": "inline", "x": [[1.0, 2.0]] * 2, "y": [0, 2]}))
    assert labels.model_dump(mode="json")["data"]["y"] == [0, 2]
    targets = JobSpec.model_validate(spec(model=REGRESSOR, training=MSE, data={
        "type": "inline", "x": [[1.0, 2.0, 3.0]] * 2, "y": [[0.5, -1], [2, 3.5]]}))
    assert targets.model_dump(mode="json")["data"]["y"] == [[0.5, -1.0], [2.0, 3.5]]
