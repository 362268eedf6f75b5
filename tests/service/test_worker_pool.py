"""WorkerPool: real processes with the settings and thread limits, restarted when they die."""
import os
import signal
import time

from service.jobs.pool import WorkerPool
from service.jobs.sqlite import SQLiteStore
from service.settings import Settings


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_pool_starts_restarts_and_stops_workers(tmp_path):
    settings = Settings(data_dir=tmp_path, workers=2, worker_threads=1, worker_nice=3, heartbeat_seconds=0.2)
    store = SQLiteStore(settings.sqlite_path())
    store.migrate()
    pool = WorkerPool(settings)
    env = pool.worker_env()
    assert env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["NEEDLE_NUM_THREADS"] == "1"  # needle.parallel: one thread per worker as well
    assert env["NEEDLE_DATA_DIR"] == str(tmp_path) and "NEEDLE_DATABASE_URL" not in env
    pool.start()
    try:
        assert pool.alive() == 2
        assert wait_for(lambda: store.live_workers(5) == 2), "workers did not register"
        victim = pool.pids()[0]
        with open(f"/proc/{victim}/stat") as stat:
            assert int(stat.read().rsplit(")", 1)[1].split()[16]) >= 3  # niceness field
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: pool.restarts == 1 and pool.alive() == 2), "dead worker not replaced"
        assert victim not in pool.pids()
    finally:
        started = time.monotonic()
        pool.stop(timeout=10)
        store.close()
    assert pool.alive() == 0 and time.monotonic() - started < 10


def test_workers_get_no_admin_key_and_their_settings_still_validate(tmp_path, monkeypatch):
    key = "k" * 40
    monkeypatch.setenv("NEEDLE_ADMIN_KEY", key)
    env = WorkerPool(Settings(data_dir=tmp_path, workers=1)).worker_env()
    assert "NEEDLE_ADMIN_KEY" not in env and key not in env.values()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NEEDLE_ADMIN_KEY")
    assert Settings().admin_key is None  # a worker's settings parse (a masked key would not)
