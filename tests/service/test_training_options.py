"""Training options: schedules, clipping, AdamW, early stopping, regression, label smoothing,
activations, warm start; and resume-after-checkpoint stays bit-identical with all of them."""
import math

import numpy as np
import pytest

from service.training import StepDone, checkpoint_from_bytes, checkpoint_to_bytes, parameters_to_bytes
from service.training.evaluation import evaluate_metrics
from service.training.inference import load_model

from .test_training_loop import assert_same_state, job_spec, new_run

# 80 training rows of a 30-feature teacher task and no dropout: the net memorises them, and the
# validation loss is lowest at epoch 7, then climbs steadily
OVERFIT = dict(model={"type": "mlp_resnet", "in_features": 30, "hidden_dim": 64, "num_blocks": 1,
                      "num_classes": 3, "drop_prob": 0.0, "norm": "layernorm"},
               optimizer={"type": "adamw", "lr": 0.003, "weight_decay": 0.01,
                          "schedule": {"type": "cosine", "min_lr": 0.001, "warmup_steps": 5}},
               data={"type": "teacher", "n_samples": 160, "n_features": 30, "n_classes": 3, "seed": 2,
                     "validation": {"type": "fraction", "fraction": 0.5}},
               training={"epochs": 60, "batch_size": 8, "clip_grad_norm": 1.0,
                         "early_stopping": {"metric": "val_loss", "patience": 4}})


def record(run, stop_after_step=None):
    """(steps [(loss, lr)], epoch metrics) of driving the run, optionally stopping after a step."""
    steps, epochs = [], []
    for event in run.events():
        if isinstance(event, StepDone):
            steps.append((event.loss, event.lr))
            if event.step == stop_after_step:
                break
        else:
            epochs.append(event.metrics)
    return steps, epochs


def test_early_stopping_fires_and_keeps_the_best_epochs_parameters():
    spec = job_spec(**OVERFIT)
    run = new_run(spec)
    _, epochs = record(run)
    result = run.result()
    assert result["stopped"] == "early_stopping" and result["epochs"] < 60
    val_losses = [e["val_loss"] for e in epochs]
    best = int(np.argmin(val_losses))
    assert result["best_epoch"] == best + 1 and result["best_metric"] == val_losses[best]
    assert len(epochs) == best + 1 + 4  # patience epochs without improvement, then stop
    assert result["val_loss"] == result["best_metric"]  # the result describes the stored model
    # the stored parameters are the best epoch's: their validation loss is best_metric again
    model, _ = load_model(parameters_to_bytes(run.state_dict(), spec["model"]))
    metrics = evaluate_metrics(model, run.data.x_val, run.data.y_val, run.loss_fn, regression=False)
    assert metrics["loss"] == result["best_metric"]


def test_restore_best_false_keeps_the_last_parameters():
    spec = job_spec(**{**OVERFIT, "training": {**OVERFIT["training"], "early_stopping": {
        "metric": "val_loss", "patience": 4, "restore_best": False}}})
    run = new_run(spec)
    record(run)
    assert_same_state(run.state_dict(), run.model.state_dict())
    assert run.result()["stopped"] == "early_stopping"


@pytest.mark.parametrize("stop_at", [3, 15, 75, 105])  # warmup, mid-epoch, after the best epoch, late
def test_resume_is_bit_identical_with_schedule_clipping_and_early_stopping(stop_at):
    spec = job_spec(**OVERFIT)
    full = new_run(spec)
    full_steps, full_epochs = record(full)
    assert len(full_steps) > stop_at
    first = new_run(spec)
    before, epochs_before = record(first, stop_after_step=stop_at)
    blob = checkpoint_to_bytes(first.snapshot())
    np.random.seed(5)
    resumed = new_run(spec)
    resumed.restore(checkpoint_from_bytes(blob))
    after, epochs_after = record(resumed)
    assert before + after == full_steps
    assert epochs_before + epochs_after == full_epochs
    assert_same_state(resumed.state_dict(), full.state_dict())
    drop_time = lambda r: {k: v for k, v in r.items() if k != "runtime_s"}
    assert drop_time(resumed.result()) == drop_time(full.result())


def test_each_step_uses_the_scheduled_rate():
    spec = job_spec(optimizer={"type": "sgd", "lr": 0.1, "schedule": {"type": "step", "step_size": 1,
                                                                        "gamma": 0.5, "warmup_steps": 2}},
                    training={"epochs": 3, "batch_size": 24})
    steps, _ = record(new_run(spec))  # 72 training rows: 3 steps per epoch
    assert [lr for _, lr in steps] == pytest.approx([0.05, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])


def test_regression_learns_a_linear_function():
    spec = job_spec(model={"type": "sequential", "layers": [{"type": "linear", "in_features": 5,
                                                             "out_features": 2}]},
                    optimizer={"type": "adam", "lr": 0.05},
                    data={"type": "linear", "n_samples": 400, "n_features": 5, "n_targets": 2, "noise": 0.1,
                          "validation": {"type": "fraction", "fraction": 0.25}},
                    training={"epochs": 40, "batch_size": 32, "loss": {"type": "mse"}})
    run = new_run(spec)
    _, epochs = record(run)
    assert set(epochs[-1]) == {"train_loss", "train_rmse", "val_loss", "val_rmse", "val_mae"}
    assert epochs[-1]["val_rmse"] < 0.15  # noise 0.1 is the floor
    assert epochs[-1]["val_loss"] == pytest.approx(epochs[-1]["val_rmse"] ** 2, rel=1e-5)


@pytest.mark.parametrize("loss", [{"type": "l1"}, {"type": "huber", "delta": 0.5}])
def test_other_regression_losses_train(loss):
    spec = job_spec(model={"type": "sequential", "layers": [
                        {"type": "linear", "in_features": 3, "out_features": 16}, {"type": "gelu"},
                        {"type": "linear", "in_features": 16, "out_features": 1}]},
                    data={"type": "inline", "x": [[i / 10, -i / 20, 1.0] for i in range(40)],
                          "y": [i / 5 for i in range(40)]},
                    training={"epochs": 30, "batch_size": 8, "loss": loss})
    steps, epochs = record(new_run(spec))
    assert epochs[-1]["train_loss"] < steps[0][0] / 3


@pytest.mark.parametrize("activation", ["leaky_relu", "tanh", "sigmoid", "gelu", "silu"])
def test_every_activation_trains_a_classifier(activation):
    spec = job_spec(model={"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1,
                           "num_classes": 3, "activation": activation},
                    training={"epochs": 8, "batch_size": 16,
                              "loss": {"type": "cross_entropy", "label_smoothing": 0.1}})
    run = new_run(spec)
    steps, epochs = record(run)
    assert math.isfinite(epochs[-1]["val_loss"]) and epochs[-1]["train_loss"] < steps[0][0]


def test_warm_start_begins_where_the_source_ended():
    source_spec = job_spec(training={"epochs": 6, "batch_size": 16})
    source = new_run(source_spec)
    record(source)
    blob = parameters_to_bytes(source.state_dict(), source_spec["model"])
    warm_spec = job_spec(training={"epochs": 1, "batch_size": 16, "init_from": {"job": "src"}})
    from service.training import prepare_run
    warm = prepare_run(warm_spec, mnist_dir=None, fetch_dataset=None, fetch_parameters={"src": blob}.__getitem__)
    assert_same_state(warm.model.state_dict(), source.state_dict())
    assert warm.validate()["val_loss"] == source.validate()["val_loss"]
