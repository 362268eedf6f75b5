"""Early-stopping rules of sweeps (ASHA, median), as pure functions of the recorded values.

The stores call them inside the transaction that records a trial's epoch metric, with the sweep
locked, so each (trial, epoch) decision is made exactly once, from the values committed before it.
"""
import statistics
from typing import Any

Value = float | None   # None: the trial's metric was missing or not finite (the worst value)


def asha_rungs(grace_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """ASHA's rung epochs: grace * rf**k, below max_epochs (deciding at the end is pointless)."""
    rungs, epoch = [], grace_epochs
    while epoch < max_epochs:
        rungs.append(epoch)
        epoch *= reduction_factor
    return rungs


def decides_at(early_stopping: dict[str, Any] | None, epoch: int, trial_epochs: int) -> bool:
    """Whether the rule makes a keep/prune decision when a trial of `trial_epochs` epochs ends
    epoch `epoch` (1-based count of completed epochs)."""
    if early_stopping is None or epoch >= trial_epochs:
        return False
    if early_stopping["type"] == "asha":
        return epoch in asha_rungs(early_stopping["grace_epochs"],
                                   early_stopping["reduction_factor"], trial_epochs)
    return epoch >= early_stopping["grace_epochs"]   # median: every epoch after the grace period


def better(a: Value, b: Value, mode: str) -> bool:
    """a is strictly better than b (None is worse than any number)."""
    if a is None:
        return False
    if b is None:
        return True
    return a < b if mode == "min" else a > b


def asha_keep(value: Value, earlier: list[Value], reduction_factor: int, mode: str) -> bool:
    """Keep a trial at a rung iff it ranks in the top 1/rf of the trials that reached the rung so
    far (itself included; at least one is kept): fewer than max(1, n // rf) of them are better."""
    if value is None:
        return False
    n = len(earlier) + 1
    better_ones = sum(better(other, value, mode) for other in earlier)
    return better_ones < max(1, n // reduction_factor)


def median_keep(value: Value, completed: list[Value], min_trials: int, mode: str) -> bool:
    """Keep a trial unless its value is worse than the median of the succeeded trials' values at
    the same epoch (decided only once min_trials of them have one)."""
    known = [v for v in completed if v is not None]
    if len(known) < min_trials:
        return True
    return not better(statistics.median(known), value, mode)


def keep(early_stopping: dict[str, Any], mode: str, value: Value, peers: list[Value]) -> bool:
    """The decision for one trial: peers are the values the rule compares against (ASHA: the
    trials decided earlier at this rung; median: the succeeded trials at this epoch)."""
    if early_stopping["type"] == "asha":
        return asha_keep(value, peers, early_stopping["reduction_factor"], mode)
    return median_keep(value, peers, early_stopping["min_trials"], mode)
