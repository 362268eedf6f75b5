"""Sweeps in the store, on every backend: trial order, max_parallel, pruning decisions, cancel, delete."""
import time

import pytest

from service.jobs import Conflict, Lease, LeaseState, NotFound, Status
from service.jobs.records import DEFAULT_TENANT, TrialPlan

ASHA = {"type": "asha", "grace_epochs": 1, "reduction_factor": 2, "max_epochs": 4}


def sweep_spec(max_parallel=2, early_stopping=None, mode="min"):
    return {"base": {"note": "brief"}, "parameters": {"optimizer.lr": {"values": [1, 2]}},
            "objective": {"metric": "val_loss", "mode": mode}, "max_parallel": max_parallel,
            "early_stopping": early_stopping}


def make_sweep(store, n=4, epochs=4, tenant=DEFAULT_TENANT, **kwargs):
    trials = [TrialPlan(spec={"trial": i, "training": {"epochs": epochs}}, params={"optimizer.lr": i},
                        param_count=3, epochs=epochs, steps=epochs * 2) for i in range(n)]
    return store.create_sweep(sweep_spec(**kwargs), trials, tenant=tenant)


def claim(store, worker="w1"):
    job = store.claim(worker, 60)
    assert job is not None
    return job, Lease(job.id, worker, job.attempt)


def epoch_point(epoch, value):
    return [("epoch", epoch, epoch * 2, {"val_loss": value, "train_loss": 1.0})]


def statuses(store, sweep_id):
    return [job.status for job in store.sweep_trials(sweep_id)]


def test_trials_are_created_in_order_and_at_most_max_parallel_are_queued(store):
    sweep = make_sweep(store, n=4, max_parallel=2)
    assert sweep.n_trials == 4 and sweep.max_parallel == 2 and sweep.metric == "val_loss"
    assert sweep.counts == {"queued": 2, "waiting": 2}
    trials = store.sweep_trials(sweep.id)
    assert [t.trial for t in trials] == [0, 1, 2, 3]
    assert [t.params for t in trials] == [{"optimizer.lr": i} for i in range(4)]
    assert all(t.sweep_id == sweep.id for t in trials)
    assert statuses(store, sweep.id) == [Status.queued] * 2 + [Status.waiting] * 2
    assert store.get_job(trials[0].id).spec == {"trial": 0, "training": {"epochs": 4}}


def test_an_ending_trial_queues_the_next_waiting_one(store):
    sweep = make_sweep(store, n=4, max_parallel=2)
    first, lease = claim(store)
    second, _ = claim(store)
    assert store.claim("w3", 60) is None  # the waiting trials are not claimable
    assert store.finish(lease, Status.succeeded, result={"val_loss": 0.1})
    assert statuses(store, sweep.id) == [Status.succeeded, Status.running, Status.queued, Status.waiting]
    third = store.sweep_trials(sweep.id)[2]
    store.request_cancel(third.id)  # a cancelled queued trial frees its slot too
    assert statuses(store, sweep.id) == [Status.succeeded, Status.running, Status.cancelled, Status.queued]


def test_expired_trials_free_their_slot(store):
    sweep = make_sweep(store, n=3, max_parallel=1)
    job = store.claim("w1", -1)
    store.expire_leases(max_attempts=1)
    assert store.get_job(job.id).status is Status.failed
    assert statuses(store, sweep.id) == [Status.failed, Status.queued, Status.waiting]


def test_asha_prunes_a_trial_outside_the_top_fraction_of_its_rung(store):
    make_sweep(store, n=3, max_parallel=3, early_stopping=ASHA)
    (a, la), (b, lb), (c, lc) = claim(store), claim(store), claim(store)
    assert store.add_metrics(la, epoch_point(1, 0.5))
    assert store.check(la) is LeaseState.ok          # first at the rung: kept
    assert store.add_metrics(lb, epoch_point(1, 0.7))
    assert store.check(lb) is LeaseState.prune       # 2 at the rung, keep 1: a is better
    assert store.heartbeat(lb, 60) is LeaseState.prune
    assert store.add_metrics(lc, epoch_point(1, 0.2))
    assert store.check(lc) is LeaseState.ok          # the best so far
    assert store.get_job(b.id).pruned_at == 1 and store.get_job(b.id).objective == 0.7
    decisions = store.sweep_decisions(a.sweep_id)
    assert [(d.job_id, d.epoch, d.value, d.keep) for d in decisions] == [
        (a.id, 1, 0.5, True), (b.id, 1, 0.7, False), (c.id, 1, 0.2, True)]
    assert store.finish(lb, Status.pruned, result={"stopped": "pruned"})
    assert store.get_job(b.id).status is Status.pruned and store.get_sweep(a.sweep_id).counts["pruned"] == 1


def test_a_decision_is_made_once_even_when_the_epoch_is_recorded_again(store):
    make_sweep(store, n=2, max_parallel=2, early_stopping=ASHA)
    (_, la), (b, lb) = claim(store), claim(store)
    store.add_metrics(la, epoch_point(1, 0.5))
    store.add_metrics(lb, epoch_point(1, 0.9))
    assert store.check(lb) is LeaseState.prune
    store.truncate_metrics(lb, after_step=0)           # a resumed trial records epoch 1 again,
    store.add_metrics(lb, epoch_point(1, 0.1))         # even with another value: same decision
    assert store.check(lb) is LeaseState.prune
    assert len(store.sweep_decisions(b.sweep_id)) == 2


def test_no_decision_at_non_rung_epochs_or_without_early_stopping(store):
    make_sweep(store, n=2, max_parallel=2, early_stopping=ASHA)   # rungs: 1, 2 (max 4)
    (_, la), (_, lb) = claim(store), claim(store)
    store.add_metrics(la, epoch_point(3, 0.1))
    store.add_metrics(lb, epoch_point(3, 0.9))
    assert store.check(lb) is LeaseState.ok
    plain = make_sweep(store, n=2, max_parallel=2)
    (_, lc), (_, ld) = claim(store), claim(store)
    store.add_metrics(lc, epoch_point(1, 0.1))
    store.add_metrics(ld, epoch_point(1, 0.9))
    assert store.check(ld) is LeaseState.ok and store.sweep_decisions(plain.id) == []


def test_max_mode_keeps_the_highest(store):
    make_sweep(store, n=2, max_parallel=2, early_stopping=ASHA, mode="max")
    (_, la), (_, lb) = claim(store), claim(store)
    store.add_metrics(la, epoch_point(1, 0.5))
    store.add_metrics(lb, epoch_point(1, 0.9))
    assert store.check(lb) is LeaseState.ok


def test_median_rule_compares_with_succeeded_trials(store):
    median = {"type": "median", "grace_epochs": 1, "min_trials": 2}
    make_sweep(store, n=4, max_parallel=4, early_stopping=median)
    leases = [claim(store)[1] for _ in range(4)]
    for lease, value in zip(leases[:2], (0.2, 0.4)):
        store.add_metrics(lease, epoch_point(1, value))
        assert store.check(lease) is LeaseState.ok   # no succeeded trials yet: never pruned
        store.finish(lease, Status.succeeded)
    store.add_metrics(leases[2], epoch_point(1, 0.35))   # median 0.3: worse, pruned
    store.add_metrics(leases[3], epoch_point(1, 0.25))   # better: kept
    assert [store.check(lease) for lease in leases[2:]] == [LeaseState.prune, LeaseState.ok]


def test_a_pruned_trial_whose_worker_vanished_ends_pruned(store):
    make_sweep(store, n=2, max_parallel=2, early_stopping=ASHA)
    _, la = claim(store)
    b = store.claim("w2", 0.5)   # w2 will vanish: its lease runs out
    store.add_metrics(la, epoch_point(1, 0.1))
    store.add_metrics(Lease(b.id, "w2", 1), epoch_point(1, 0.9))
    time.sleep(0.6)
    store.expire_leases(max_attempts=3)
    assert store.get_job(b.id).status is Status.pruned


def test_cancel_sweep_ends_every_trial_and_then_conflicts(store):
    sweep = make_sweep(store, n=4, max_parallel=2)
    running, lease = claim(store)
    cancelled = store.cancel_sweep(sweep.id)
    assert cancelled.cancel_requested
    assert statuses(store, sweep.id) == [Status.running] + [Status.cancelled] * 3
    assert store.check(lease) is LeaseState.cancel
    assert store.finish(lease, Status.cancelled)
    assert statuses(store, sweep.id) == [Status.cancelled] * 4   # nothing promoted after a cancel
    with pytest.raises(Conflict):
        store.cancel_sweep(sweep.id)
    with pytest.raises(NotFound):
        store.cancel_sweep("nope")


def test_delete_sweep_needs_ended_trials_and_removes_them(store):
    sweep = make_sweep(store, n=2, max_parallel=2)
    job, lease = claim(store)
    with pytest.raises(Conflict):
        store.delete_sweep(sweep.id)
    store.add_metrics(lease, epoch_point(1, 0.5))
    store.finish(lease, Status.succeeded, parameters=b"p")
    with pytest.raises(Conflict):
        store.delete_job(job.id)       # trials go with their sweep
    store.cancel_sweep(sweep.id)
    store.delete_sweep(sweep.id)
    with pytest.raises(NotFound):
        store.get_sweep(sweep.id)
    with pytest.raises(NotFound):
        store.get_job(job.id)
    assert store.get_parameters(job.id) is None
    with pytest.raises(NotFound):
        store.delete_sweep(sweep.id)


def test_list_sweeps_newest_first_with_cursor_pages(store):
    ids = [make_sweep(store, n=1).id for _ in range(5)]
    seen, cursor = [], None
    while True:
        page, cursor = store.list_sweeps(limit=2, cursor=cursor)
        seen += [s.id for s in page]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert page[-1].counts == {"queued": 1}
    with pytest.raises(ValueError):
        store.list_sweeps(cursor="x")


# ---- tenancy and quotas ----
def test_another_tenants_sweep_is_not_found_and_its_trials_are_its_tenants(store):
    trials = [TrialPlan(spec={"trial": i, "priority": 2}, params={"i": i}, param_count=1, epochs=4,
                        steps=4) for i in range(2)]
    sweep = store.create_sweep(sweep_spec(), trials, tenant="a", owner="key-a")
    assert (sweep.tenant, sweep.owner) == ("a", "key-a")
    assert {(t.tenant, t.owner, t.priority) for t in store.sweep_trials(sweep.id)} == {("a", "key-a", 2)}
    for call in (store.get_sweep, store.sweep_trials, store.sweep_decisions, store.cancel_sweep,
                 store.delete_sweep):
        with pytest.raises(NotFound):
            call(sweep.id, tenant="b")
    assert store.list_sweeps(tenant="b") == ([], None)
    assert [s.id for s in store.list_sweeps(tenant="a")[0]] == [sweep.id]
    assert store.get_sweep(sweep.id, tenant="a").id == sweep.id == store.get_sweep(sweep.id).id
    store.cancel_sweep(sweep.id, tenant="a")
    store.delete_sweep(sweep.id, tenant="a")


def test_the_trials_queued_at_once_count_against_the_active_jobs_quota(store):
    from service.jobs import ActiveJobsQuotaExceeded
    store.create_job({"n": 1}, param_count=1, epochs=1, steps=1, tenant="a", owner="k")
    trials = [TrialPlan(spec={"trial": i}, params={}, param_count=1, epochs=1, steps=1) for i in range(5)]
    with pytest.raises(ActiveJobsQuotaExceeded):   # 1 active + 3 queued at once > 3
        store.create_sweep(sweep_spec(max_parallel=3), trials, tenant="a", owner="k", max_active_jobs=3)
    assert store.list_sweeps() == ([], None)
    sweep = store.create_sweep(sweep_spec(max_parallel=2), trials, tenant="a", owner="k", max_active_jobs=3)
    assert sweep.counts == {"queued": 2, "waiting": 3}


def test_list_jobs_filters_by_sweep_within_the_tenant(store):
    sweep = make_sweep(store, n=3, max_parallel=1, tenant="a")
    other = make_sweep(store, n=2, tenant="a")
    store.create_job({"note": "not a trial"}, param_count=1, epochs=1, steps=1, tenant="a")
    trials = [t.id for t in store.sweep_trials(sweep.id)]
    ids = lambda **kw: [j.id for j in store.list_jobs(limit=50, **kw)[0]]
    assert ids(sweep_id=sweep.id) == trials[::-1]  # newest first, waiting trials included
    assert ids(sweep_id=sweep.id, tenant="a") == trials[::-1]
    assert ids(sweep_id=sweep.id, tenant="b") == []  # another tenant's sweep lists nothing
    assert ids(sweep_id=sweep.id, status=Status.waiting) == trials[:0:-1]
    assert ids(sweep_id="no-such-sweep") == []
    assert len(ids(sweep_id=other.id)) == 2 and len(ids()) == 6
    page, cursor = store.list_jobs(limit=2, sweep_id=sweep.id)
    rest, end = store.list_jobs(limit=2, sweep_id=sweep.id, cursor=cursor)
    assert [j.id for j in page + rest] == trials[::-1] and end is None
