"""Sweep specs: trial expansion (grid order, seeded draws, paths into lists), cross-field checks,
and the early-stopping rules as pure functions."""
import pytest
from pydantic import ValidationError

from service.jobs.pruning import asha_keep, asha_rungs, decides_at, median_keep
from service.specs.sweep import SweepSpec

BASE = {"model": {"type": "sequential", "layers": [
            {"type": "linear", "in_features": 2, "out_features": 8}, {"type": "relu"},
            {"type": "dropout", "p": 0.1}, {"type": "linear", "in_features": 8, "out_features": 3}]},
        "optimizer": {"type": "sgd", "lr": 0.1},
        "data": {"type": "spirals", "n_samples": 100, "validation": {"type": "fraction", "fraction": 0.2}},
        "training": {"epochs": 9}}


def sweep(parameters, **fields):
    return SweepSpec.model_validate({"base": BASE, "parameters": parameters, **fields})


def locs(parameters, **fields):
    with pytest.raises(ValidationError) as caught:
        sweep(parameters, **fields)
    return [error["loc"] for error in caught.value.errors()]


def test_grid_takes_every_combination_with_the_last_parameter_fastest():
    spec = sweep({"optimizer.lr": {"values": [0.1, 0.2]}, "model.layers.2.p": {"values": [0.0, 0.5]},
                  "training.batch_size": {"type": "int_uniform", "low": 8, "high": 9}})
    assert [tuple(t.params.values()) for t in spec.trials] == [
        (lr, p, b) for lr in (0.1, 0.2) for p in (0.0, 0.5) for b in (8, 9)]
    assert [t.index for t in spec.trials] == list(range(8))
    last = spec.trials[-1].spec
    assert (last.optimizer.lr, last.model.layers[2].p, last.training.batch_size) == (0.2, 0.5, 9)
    assert spec.trials[0].spec.model.layers[2].p == 0.0 and BASE["model"]["layers"][2]["p"] == 0.1


def test_values_may_be_whole_objects():
    spec = sweep({"optimizer": {"values": [{"type": "sgd", "lr": 0.1}, {"type": "adam"}]}})
    assert [t.spec.optimizer.type for t in spec.trials] == ["sgd", "adam"]


def test_random_draws_follow_the_seed():
    params = {"optimizer.lr": {"type": "loguniform", "low": 1e-4, "high": 1.0},
              "model.layers.2.p": {"type": "uniform", "low": 0.0, "high": 0.5},
              "training.batch_size": {"values": [16, 32]}}

    def draws(seed):
        return [t.params for t in sweep(params, strategy={"type": "random", "n_trials": 5, "seed": seed}).trials]
    assert draws(3) == draws(3) != draws(4)
    assert all(1e-4 <= d["optimizer.lr"] <= 1.0 and 0 <= d["model.layers.2.p"] <= 0.5 for d in draws(3))


def test_invalid_sampled_values_name_the_parameter():
    assert ("parameters", "model.layers.2.p") in locs(
        {"model.layers.2.p": {"type": "uniform", "low": 0.5, "high": 1.5}},
        strategy={"type": "random", "n_trials": 20, "seed": 0})


def test_width_mismatches_caused_by_a_parameter_are_reported():
    # out_features of layer 0 breaks in_features of layer 3: not under the parameter's path
    assert ("parameters",) in locs({"model.layers.0.out_features": {"values": [8, 16]}})


def test_cross_field_checks():
    assert ("parameters", "optimizer.lr.x") in locs({"optimizer.lr": {"values": [0.1]},
                                                     "optimizer.lr.x": {"values": [1]}})
    assert ("early_stopping", "asha", "grace_epochs") in locs(
        {"optimizer.lr": {"values": [0.1]}}, early_stopping={"type": "asha", "grace_epochs": 9})
    assert ("parameters", "training.epochs") in locs(
        {"training.epochs": {"values": [3]}}, early_stopping={"type": "asha", "max_epochs": 5})
    assert ("parameters",) in locs({"optimizer.lr": {"values": list(range(1, 40))},
                                    "training.batch_size": {"values": list(range(1, 40))}})
    no_validation = {**BASE, "data": {"type": "spirals", "n_samples": 100}}
    with pytest.raises(ValidationError) as caught:
        SweepSpec.model_validate({"base": no_validation, "parameters": {"optimizer.lr": {"values": [0.1]}}})
    assert caught.value.errors()[0]["loc"] == ("base", "data", "spirals", "validation")


def test_asha_max_epochs_sets_every_trials_epochs():
    spec = sweep({"optimizer.lr": {"values": [0.1]}}, early_stopping={"type": "asha", "max_epochs": 27})
    assert spec.trials[0].spec.training.epochs == 27


def test_inline_data_is_bounded_across_trials():
    rows = [[0.0, 1.0]] * 5000
    base = {**BASE, "data": {"type": "inline", "x": rows, "y": [0] * 5000,
                             "validation": {"type": "fraction", "fraction": 0.2}}}
    with pytest.raises(ValidationError) as caught:
        SweepSpec.model_validate({"base": base, "parameters": {"training.seed": {"values": list(range(50))}}})
    assert caught.value.errors()[0]["loc"] == ("base", "data", "inline")


def test_asha_rungs_and_decisions():
    assert asha_rungs(1, 3, 27) == [1, 3, 9] and asha_rungs(2, 2, 9) == [2, 4, 8]
    asha = {"type": "asha", "grace_epochs": 1, "reduction_factor": 3}
    assert [e for e in range(1, 28) if decides_at(asha, e, 27)] == [1, 3, 9]
    assert not decides_at(None, 1, 27)
    assert asha_keep(0.5, [], 3, "min")                        # first at its rung
    assert not asha_keep(0.5, [0.4], 3, "min")                 # keep 1 of 2: the better one
    assert asha_keep(0.3, [0.4, 0.5], 3, "min")
    assert asha_keep(0.45, [0.4, 0.5, 0.6, 0.7, 0.8], 3, "min")  # 6 at the rung: keep 2
    assert not asha_keep(0.55, [0.4, 0.5, 0.6, 0.7, 0.8], 3, "min")
    assert asha_keep(0.4, [0.4], 3, "min")                     # ties are kept
    assert not asha_keep(None, [], 3, "min")                   # no finite metric: pruned
    assert asha_keep(0.9, [0.4], 3, "max")


def test_median_rule():
    median = {"type": "median", "grace_epochs": 2}
    assert [e for e in range(1, 6) if decides_at(median, e, 5)] == [2, 3, 4]
    assert median_keep(0.9, [0.1, 0.2], min_trials=3, mode="min")   # too few to judge
    assert not median_keep(0.9, [0.1, 0.2, 0.3], min_trials=3, mode="min")
    assert median_keep(0.2, [0.1, 0.2, 0.3], min_trials=3, mode="min")
    assert not median_keep(None, [0.1, 0.2, 0.3], min_trials=3, mode="min")
