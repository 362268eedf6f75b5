"""Two worker processes report the same ASHA rungs at once: the store decides each (trial, rung)
once, and the decisions are exactly those of a sequential run in the order they were made."""
import multiprocessing as mp
import random

from service.jobs import Lease, LeaseState
from service.jobs.pruning import asha_keep
from service.jobs.records import TrialPlan

N_TRIALS = 24
RF = 2
ASHA = {"type": "asha", "grace_epochs": 1, "reduction_factor": RF, "max_epochs": 8}  # rungs 1, 2, 4
SPEC = {"objective": {"metric": "val_loss", "mode": "min"}, "max_parallel": N_TRIALS,
        "early_stopping": ASHA}


def _new_sweep(store):
    trials = [TrialPlan(spec={"trial": i}, params={"i": i}, param_count=1, epochs=8, steps=8)
              for i in range(N_TRIALS)]
    return store.create_sweep(SPEC, trials)


def _value(job_id: str, epoch: int) -> float:
    return random.Random(f"{job_id}:{epoch}").random()   # the same in every process


def _report(store, lease: Lease, epoch: int) -> bool:
    """Record the trial's epoch metric; True when it may go on."""
    store.add_metrics(lease, [("epoch", epoch, epoch, {"val_loss": _value(lease.job_id, epoch)})])
    return store.check(lease) is LeaseState.ok


def _worker(make_store, leases, start, done) -> None:
    """Child process: wait for the start signal, then report every rung of its trials in turns."""
    store = make_store()
    start.wait(10)
    alive = list(leases)
    for epoch in (1, 2, 4):
        alive = [lease for lease in alive if _report(store, lease, epoch)]
    store.close()
    done.put(len(alive))


def _replay(decisions) -> list[bool]:
    """The keep decisions a sequential run makes, fed the same values in the same order."""
    at_rung: dict[int, list[float]] = {}
    replayed = []
    for d in decisions:
        earlier = at_rung.setdefault(d.epoch, [])
        replayed.append(asha_keep(d.value, earlier, RF, "min"))
        earlier.append(d.value)
    return replayed


def test_concurrent_rung_reports_decide_as_a_sequential_run(store_factory):
    store = store_factory()
    ctx = mp.get_context("fork")
    for _ in range(6):  # a few rounds: more chances for the two processes to collide
        sweep = _new_sweep(store)
        leases = []
        while (job := store.claim("racer", 60)) is not None:
            leases.append(Lease(job.id, "racer", job.attempt))
        assert len(leases) == N_TRIALS
        start, done = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(store_factory, leases[i::2], start, done))
                 for i in range(2)]
        for proc in procs:
            proc.start()
        start.set()
        survivors = sum(done.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join(10)
            assert proc.exitcode == 0

        decisions = store.sweep_decisions(sweep.id)
        assert len({(d.job_id, d.epoch) for d in decisions}) == len(decisions), "decided twice"
        assert [d.keep for d in decisions] == _replay(decisions)
        assert {d.value for d in decisions} == {_value(d.job_id, d.epoch) for d in decisions}
        pruned = {d.job_id for d in decisions if not d.keep}
        assert survivors == N_TRIALS - len(pruned) and survivors >= 1

        # the same reports made one at a time in that order prune the same trials
        sequential = _new_sweep(store)
        trial_of = {job.id: job.trial for sweep_id in (sweep.id, sequential.id)
                    for job in store.sweep_trials(sweep_id)}
        twin_of = {job.trial: job.id for job in store.sweep_trials(sequential.id)}
        for _ in range(N_TRIALS):
            assert store.claim("seq", 60) is not None
        for d in decisions:
            store.add_metrics(Lease(twin_of[trial_of[d.job_id]], "seq", 1),
                              [("epoch", d.epoch, d.epoch, {"val_loss": d.value})])
        replayed = store.sweep_decisions(sequential.id)
        assert [(trial_of[d.job_id], d.epoch, d.keep) for d in decisions] == \
            [(trial_of[r.job_id], r.epoch, r.keep) for r in replayed]
