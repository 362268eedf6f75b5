"""A server SIGKILLed mid-job and started again on the same data dir loses nothing: finished jobs
stay, the interrupted job resumes to the result of an uninterrupted run, queued jobs run."""
import os
import signal

from .server import Server, wait_for
from .specs import spirals, tuned_teacher


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigkill_mid_job_then_restart(tmp_path):
    data_dir = tmp_path / "data"
    first = Server(data_dir, workers=1).start()
    orphans: list[int] = []
    try:
        done = first.train(spirals(seed=21))
        interrupted = first.submit(tuned_teacher(epochs=40, seed=5))["id"]
        queued = first.submit(spirals(seed=22))["id"]
        first.wait_until(interrupted, lambda job: job["progress"]["step"] > 100,
                         what="the long job to pass its first checkpoint")
        orphans = first.worker_pids()
        assert orphans, "the server should have a worker process"
        first.kill()
        # workers of a dead server notice their parent is gone and exit
        wait_for(lambda: not any(alive(pid) for pid in orphans), 20, "orphaned workers to exit")
    finally:
        for pid in orphans:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        first.stop()

    second = Server(data_dir, workers=1).start()
    try:
        kept = second.job(done["id"])
        assert kept["status"] == "succeeded" and kept["result"] == done["result"]
        resumed = second.finish(interrupted, timeout=120)
        assert resumed["status"] == "succeeded", resumed["error"]
        assert resumed["attempt"] == 2
        assert second.finish(queued)["status"] == "succeeded"
        clean = second.train(tuned_teacher(epochs=40, seed=5), timeout=120)
        without_time = lambda result: {k: v for k, v in result.items() if k != "runtime_s"}
        assert without_time(resumed["result"]) == without_time(clean["result"])
        assert resumed["result"]["stopped"] == "early_stopping"  # fired after the restart
        steps = lambda job: [p for p in second.client.get(f"/v1/jobs/{job['id']}/metrics").json()["points"]]
        strip = lambda points: [(p["kind"], p["step"], p["values"]) for p in points]
        assert strip(steps(resumed)) == strip(steps(clean))  # losses and lrs, step for step
        params = lambda job: second.client.get(f"/v1/jobs/{job['id']}/parameters", params={"format": "npz"}).content
        assert params(resumed) == params(clean)
    finally:
        second.stop()
