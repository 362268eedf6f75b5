"""Leases that do not lie (issue 7 item 4): a job is re-run only when its worker is really gone."""
from .server import FAST_WORKER_ENV, Server, spawn_cli, terminate
from .specs import long_teacher, spirals


def test_slow_data_preparation_outlives_a_short_lease_on_attempt_one(tmp_path):
    # 20 s of CPU-bound preparation against a 2 s lease, with a second idle worker ready to
    # steal the job the moment its lease runs out: the heartbeat thread must keep it renewed.
    server = Server(tmp_path / "data", workers=2, env={
        "NEEDLE_TEST_SLOW_PREPARATION_S": "20", "NEEDLE_LEASE_SECONDS": "2",
        "NEEDLE_HEARTBEAT_SECONDS": "0.5"}).start()
    try:
        job = server.finish(server.submit(spirals())["id"], timeout=120, interval=0.5)
        assert job["status"] == "succeeded", (job["error"], server.log())
        assert job["attempt"] == 1
        assert "test hook: spending 20.0 s in data preparation" in server.log()
    finally:
        server.stop()


def test_api_restart_leaves_an_external_workers_job_running(tmp_path):
    data_dir = tmp_path / "data"
    api = Server(data_dir, workers=0).start()
    env = {**api.env, **FAST_WORKER_ENV}
    worker = spawn_cli(["worker", "--data-dir", str(data_dir)], env, tmp_path / "worker.log")
    try:
        job_id = api.submit(long_teacher(epochs=150))["id"]
        api.wait_until(job_id, lambda job: job["status"] == "running" and
                       job["progress"]["step"] > 50, timeout=60, what="the worker to train")
        api.stop()
        api = Server(data_dir, workers=0).start()   # same SQLite file, same live worker
        job = api.job(job_id)
        assert job["status"] == "running" and job["attempt"] == 1, job
        job = api.finish(job_id, timeout=180, interval=0.2)
        assert job["status"] == "succeeded" and job["attempt"] == 1, (job, api.log())
    finally:
        api.stop()
        terminate([worker], 30)
