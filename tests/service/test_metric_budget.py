"""Bounded step metrics: groups within an epoch, mean of each value, exact under the budget."""
import pytest

from service.jobs.metric_budget import StepAggregator, steps_per_point


def feed(aggregator, steps_per_epoch, epochs, loss=lambda step: float(step)):
    points, step = [], 0
    for epoch in range(epochs):
        for _ in range(steps_per_epoch):
            step += 1
            points += aggregator.add(epoch, step, {"loss": loss(step), "lr": 0.1})
        points += aggregator.flush()  # the worker flushes at every epoch end
    return points


def test_under_the_budget_every_step_is_its_own_point():
    assert steps_per_point(10_000, 10_000) == 1
    points = feed(StepAggregator(1), 5, 2)
    assert [(p[2], p[3]["loss"]) for p in points] == [(s, float(s)) for s in range(1, 11)]


def test_over_the_budget_consecutive_steps_are_averaged_within_an_epoch():
    every = steps_per_point(120, 50)
    assert every == 3
    points = feed(StepAggregator(every), 7, 2)   # epochs of 7 steps: groups 3, 3, 1
    assert [p[2] for p in points] == [3, 6, 7, 10, 13, 14]
    assert [p[1] for p in points] == [0, 0, 0, 1, 1, 1]
    assert points[0][3] == pytest.approx({"loss": 2.0, "lr": 0.1})  # mean of steps 1, 2, 3
    assert points[2][3]["loss"] == 7.0                   # the epoch's last, alone
    assert all(set(p[3]) == {"loss", "lr"} for p in points)


def test_an_epoch_change_closes_a_group_even_without_a_flush():
    aggregator = StepAggregator(4)
    out = aggregator.add(0, 1, {"loss": 1.0}) + aggregator.add(1, 2, {"loss": 3.0})
    assert out == [("step", 0, 1, {"loss": 1.0})]
    assert aggregator.flush() == [("step", 1, 2, {"loss": 3.0})]
    assert aggregator.flush() == []
