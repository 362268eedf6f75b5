"""The training loop: deterministic, resumable bit-identically, fails clearly on divergence."""
import numpy as np
import pytest

from service.specs import JobSpec, planned_steps
from service.specs.training import TrainingSpec
from service.training import (StepDone, TrainingError, checkpoint_from_bytes, checkpoint_to_bytes,
                              prepare_run)


def job_spec(model=None, optimizer=None, training=None, data=None) -> dict:
    """A normalised spec (what the API stores)."""
    return JobSpec.model_validate({
        "model": model or {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 16, "num_blocks": 1,
                           "num_classes": 3, "drop_prob": 0.2},
        "optimizer": optimizer or {"type": "adam", "lr": 0.01},
        "data": data or {"type": "spirals", "n_samples": 90, "n_classes": 3,
                         "validation": {"type": "fraction", "fraction": 0.2}},
        "training": training or {"epochs": 3, "batch_size": 16},
    }).model_dump(mode="json")


def new_run(spec):
    return prepare_run(spec, mnist_dir=None, fetch_dataset=None)


def train(run, stop_after_step=None):
    """Drive the run; returns (step losses, epoch metrics). Stops after a given step if asked."""
    losses, epochs = [], []
    for event in run.events():
        if isinstance(event, StepDone):
            losses.append(event.loss)
        else:
            epochs.append(event.metrics)
        if stop_after_step is not None and isinstance(event, StepDone) and event.step == stop_after_step:
            break
    return losses, epochs


def assert_same_state(a, b):
    assert list(a) == list(b)
    for key in a:
        assert np.array_equal(a[key], b[key]), key


def test_same_spec_twice_gives_identical_losses_and_parameters():
    spec = job_spec()
    run_a, run_b = new_run(spec), new_run(spec)
    losses_a, epochs_a = train(run_a)
    np.random.seed(123)  # global state between runs must not matter
    losses_b, epochs_b = train(run_b)
    assert losses_a == losses_b and epochs_a == epochs_b
    assert_same_state(run_a.state_dict(), run_b.state_dict())
    other = new_run(job_spec(training={"epochs": 3, "batch_size": 16, "seed": 1}))
    assert train(other)[0] != losses_a


def test_steps_and_epochs_match_the_plan():
    spec = job_spec()
    run = new_run(spec)
    losses, epochs = train(run)
    n_train = len(run.data.y_train)
    assert run.planned() == planned_steps(n_train, TrainingSpec.model_validate(spec["training"]))
    assert len(losses) == run.planned()[1] == 3 * 5 and len(epochs) == 3
    assert all(m["val_loss"] is not None and 0 <= m["val_error"] <= 1 for m in epochs)
    result = run.result()
    assert result["epochs"] == 3 and result["steps"] == 15 and "stopped" not in result
    assert result["train_loss"] == epochs[-1]["train_loss"] and result["runtime_s"] > 0
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-epoch, and exactly at an epoch's end
def test_resume_from_a_checkpoint_is_bit_identical(stop_at):
    spec = job_spec(training={"epochs": 3, "batch_size": 16, "shuffle": True})
    full = new_run(spec)
    full_losses, full_epochs = train(full)

    first = new_run(spec)
    losses_before, epochs_before = train(first, stop_after_step=stop_at)
    blob = checkpoint_to_bytes(first.snapshot())
    np.random.seed(999)  # a fresh process would have some other global RNG state
    resumed = new_run(spec)
    resumed.restore(checkpoint_from_bytes(blob))
    losses_after, epochs_after = train(resumed)

    assert losses_before + losses_after == full_losses
    assert epochs_before + epochs_after == full_epochs
    assert_same_state(resumed.state_dict(), full.state_dict())
    assert resumed.result()["steps"] == full.result()["steps"]


def test_resume_with_sgd_momentum_and_layernorm():
    spec = job_spec(model={"type": "mlp_resnet", "in_features": 2, "hidden_dim": 8, "num_blocks": 1,
                           "num_classes": 3, "norm": "layernorm"},
                    optimizer={"type": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01})
    full = new_run(spec)
    full_losses, _ = train(full)
    first = new_run(spec)
    before, _ = train(first, stop_after_step=4)
    resumed = new_run(spec)
    resumed.restore(checkpoint_from_bytes(checkpoint_to_bytes(first.snapshot())))
    after, _ = train(resumed)
    assert before + after == full_losses
    assert_same_state(resumed.state_dict(), full.state_dict())


def test_diverging_loss_fails_with_the_step():
    spec = job_spec(optimizer={"type": "sgd", "lr": 1e30}, training={"epochs": 5, "batch_size": 8})
    with pytest.raises(TrainingError, match=r"^loss became (nan|inf) at step (\d+)$") as info:
        train(new_run(spec))
    step = int(str(info.value).rsplit(" ", 1)[1])
    assert step > 1
    # every earlier step was finite: re-run and stop just before the reported step
    losses, _ = train(new_run(spec), stop_after_step=step - 1)
    assert len(losses) == step - 1 and np.isfinite(losses).all()


def test_max_steps_stops_early_with_the_reason():
    run = new_run(job_spec(training={"epochs": 10, "batch_size": 16, "stopping": {"max_steps": 7}}))
    losses, epochs = train(run)
    assert len(losses) == 7 and len(epochs) == 1
    result = run.result()
    assert result["stopped"] == "max_steps" and result["steps"] == 7 and result["epochs"] == 1
    assert result["val_loss"] is not None and result["train_loss"] == pytest.approx(np.mean(losses[5:7]), rel=0.3)


def test_max_runtime_stops_early_with_the_reason():
    run = new_run(job_spec(training={"epochs": 1000, "batch_size": 16, "stopping": {"max_runtime_s": 0.2}}))
    losses, _ = train(run)
    result = run.result()
    assert result["stopped"] == "max_runtime_s" and 0 < len(losses) < 5000
    assert 0.2 <= result["runtime_s"] < 5


def test_no_validation_reports_null_val_metrics():
    run = new_run(job_spec(data={"type": "teacher", "n_samples": 64, "n_features": 2, "n_classes": 3},
                           training={"epochs": 1, "batch_size": 64}))
    _, epochs = train(run)
    assert epochs == [{**epochs[0], "val_loss": None, "val_error": None}]
    assert isinstance(epochs[0]["train_loss"], float)


def test_building_a_run_leaves_the_callers_random_stream_alone():
    np.random.seed(3)
    expected = np.random.rand(3)
    np.random.seed(3)
    new_run(job_spec())
    assert np.array_equal(np.random.rand(3), expected)


def test_training_stays_float32_even_on_float64_arrays():
    """needle keeps numpy's dtype (course semantics), so the service casts batches to float32 itself."""
    from service.training import TrainingData, TrainingRun
    rng = np.random.default_rng(0)
    data = TrainingData(rng.standard_normal((40, 2)), rng.integers(0, 3, 40), rng.standard_normal((10, 2)),
                        rng.integers(0, 3, 10))  # float64 x
    run = TrainingRun(job_spec(training={"epochs": 1, "batch_size": 16}), data)
    losses, _ = train(run)
    assert len(losses) == 3
    assert {a.dtype for a in run.state_dict().values()} == {np.dtype("float32")}
    assert {b.dtype for bufs in run.optimizer.state_dict()["state"].values() for b in bufs.values()} == \
        {np.dtype("float32")}
