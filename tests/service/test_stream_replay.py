"""Replay pages: read once for all the streams asking at the same time, read afresh after."""
import asyncio

from service.api.streams.replay import REPLAY_PAGE, ReplayPages
from service.jobs.sqlite import SQLiteStore
from tests.store.test_contract import claim_lease, make_job


def _store_with_points(tmp_path, count: int):
    store = SQLiteStore(tmp_path / "jobs.db")
    store.migrate()
    job = make_job(store)
    _, lease = claim_lease(store)
    for start in range(0, count, 1000):
        assert store.add_metrics(lease, [("step", 0, s, {"loss": 1.0 / (s + 1)})
                                         for s in range(start, min(start + 1000, count))])
    return store, job, lease


def test_streams_asking_together_share_one_read(tmp_path):
    store, job, _ = _store_with_points(tmp_path, REPLAY_PAGE + 10)
    replay = ReplayPages(store)

    async def together():
        return await asyncio.gather(*(replay.page(job.id, 0) for _ in range(50)))
    pages = asyncio.run(together())
    assert replay.reads == 1
    assert all(page == pages[0] for page in pages)
    chunk, last_seq, count = pages[0]
    expected = store.get_metrics(job.id, limit=REPLAY_PAGE)
    assert count == REPLAY_PAGE and last_seq == expected[-1].seq
    assert chunk.count(b"event: metric\n") == REPLAY_PAGE
    assert f"id: {expected[0].seq}\n".encode() in chunk
    store.close()


def test_a_later_ask_reads_again_so_it_sees_what_the_store_holds_now(tmp_path):
    store, job, lease = _store_with_points(tmp_path, REPLAY_PAGE + 10)
    replay = ReplayPages(store)
    assert asyncio.run(replay.page(job.id, 0))[2] == REPLAY_PAGE
    # a job resumed from its checkpoint drops the points after it: they must not be replayed
    assert store.truncate_metrics(lease, after_step=99)
    assert store.add_metrics(lease, [("step", 0, 100, {"loss": 0.5})])
    chunk, last_seq, count = asyncio.run(replay.page(job.id, 0))
    assert count == 101 and last_seq == store.get_metrics(job.id)[-1].seq
    assert replay.reads == 2
    store.close()


def test_a_stream_that_goes_away_leaves_the_read_to_the_others(tmp_path):
    store, job, _ = _store_with_points(tmp_path, 100)
    replay = ReplayPages(store)

    async def scenario():
        leaving = asyncio.ensure_future(replay.page(job.id, 0))
        staying = asyncio.ensure_future(replay.page(job.id, 0))
        await asyncio.sleep(0)
        leaving.cancel()
        return await staying
    assert asyncio.run(scenario())[2] == 100
    assert replay.reads == 1
    store.close()
