"""GET /v1/jobs/{id}/events over HTTP: an API without workers, a `needle-service worker` process
started by the test (so the events cross processes through the store), on SQLite and PostgreSQL."""
import threading
from pathlib import Path

import httpx
import pytest

from tests.pg import create_schema, postgres_url

from .server import Server, spawn_cli, terminate, wait_for
from .specs import long_teacher, spirals
from .sse import Event, collect, events, open_stream


def metric_events(received: list[Event]) -> list[Event]:
    return [e for e in received if e.event == "metric"]


def stored_points(client: httpx.Client, job_id: str) -> list[dict]:
    page = client.get(f"/v1/jobs/{job_id}/metrics", params={"limit": 10_000}).json()
    return page["points"]


def assert_matches_metrics(client: httpx.Client, job_id: str, received: list[Event]) -> None:
    """Every stored point exactly once, in order, with id = seq and data = the /metrics point."""
    points = metric_events(received)
    assert [int(e.id) for e in points] == [p["seq"] for p in stored_points(client, job_id)]
    assert [e.json() for e in points] == stored_points(client, job_id)


class Background:
    """Collect a stream's events on a thread while the test starts workers."""

    def __init__(self, client: httpx.Client, job_id: str):
        self.received: list[Event] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(client, job_id), daemon=True)
        self.thread.start()

    def _run(self, client, job_id):
        try:
            with open_stream(client, job_id) as response:
                assert response.status_code == 200
                for event in events(response):
                    self.received.append(event)
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float = 90) -> list[Event]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the stream did not end"
        if self.error is not None:
            raise self.error
        return self.received


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An API without local workers: jobs stay queued until a test starts a worker process."""
    running = Server(tmp_path_factory.mktemp("events"), workers=0,
                     env={"NEEDLE_EVENTS_KEEPALIVE_SECONDS": "0.5"}).start()
    yield running
    running.stop()


def start_worker(api: Server, *extra: str):
    log = api.data_dir / f"worker-{len(list(api.data_dir.glob('worker-*')))}.log"
    return spawn_cli(["worker", "--data-dir", str(api.data_dir), *extra], api.env, log)


def follow_with_worker(api: Server, spec: dict, *worker_args: str) -> tuple[str, list[Event]]:
    """Open a stream on a queued job, start a worker process, collect the stream to its end."""
    job_id = api.submit(spec)["id"]
    stream = Background(api.client, job_id)
    wait_for(lambda: stream.received, 30, "the first event")
    worker = start_worker(api, *worker_args)
    try:
        return job_id, stream.result()
    finally:
        terminate([worker], 10)


def test_follow_from_queued_to_end_gets_every_point_once(api):
    job_id, received = follow_with_worker(api, long_teacher(epochs=30))  # about a second
    first, last = received[0], received[-1]
    assert first.event == "status" and first.json()["status"] == "queued"
    assert first.json().keys() == api.job(job_id).keys()  # the job as GET shows it
    statuses = [e.json()["status"] for e in received if e.event == "status"]
    assert "running" in statuses and statuses[-1] == "succeeded"
    steps = [e.json()["progress"]["step"] for e in received if e.event == "status"]
    assert steps == sorted(steps) and len(set(steps)) > 2  # progress changes are pushed
    assert last.event == "end" and last.json() == api.job(job_id)
    assert_matches_metrics(api.client, job_id, received)
    assert len(metric_events(received)) == 30 * 63 + 30  # 63 steps per epoch, plus epoch points


def test_reconnect_with_last_event_id_loses_and_repeats_nothing(api):
    job_id = api.submit(long_teacher(epochs=40))["id"]  # a few seconds
    worker = start_worker(api)
    try:
        first: list[Event] = []
        with open_stream(api.client, job_id) as response:
            for event in events(response):
                first.append(event)
                if len(metric_events(first)) >= 40:
                    break  # disconnect mid-job
        assert api.job(job_id)["status"] == "running", "the disconnect was not mid-job"
        resume_from = metric_events(first)[-1].id
        second = collect(api.client, job_id, last_event_id=resume_from)
    finally:
        terminate([worker], 10)
    union = metric_events(first) + metric_events(second)
    assert len({e.id for e in union}) == len(union), "a point came twice"
    assert second[0].event == "status" and second[-1].event == "end"
    assert_matches_metrics(api.client, job_id, union)


def test_finished_job_replays_after_the_cursor_and_ends(api):
    job_id, _ = follow_with_worker(api, spirals(epochs=2))
    points = stored_points(api.client, job_id)
    cursor = points[len(points) // 2]["seq"]
    received = collect(api.client, job_id, after=cursor)
    assert [e.event for e in received[:1] + received[-1:]] == ["status", "end"]
    assert [e.json() for e in metric_events(received)] == [p for p in points if p["seq"] > cursor]
    header_wins = collect(api.client, job_id, after=0, last_event_id=str(cursor))
    assert metric_events(header_wins) == metric_events(received)


def test_idle_stream_sends_keep_alives(api):
    job_id = api.submit(spirals())["id"]  # no worker: stays queued
    with open_stream(api.client, job_id) as response:
        kinds = []
        for event in events(response, comments=True):
            kinds.append(event.event)
            if kinds.count("comment") >= 2:
                break
    assert kinds[0] == "status" and kinds.count("comment") == 2
    api.client.post(f"/v1/jobs/{job_id}/cancel")


def test_unknown_job_is_404_and_bad_cursor_is_422(api):
    assert api.client.get("/v1/jobs/nope/events").status_code == 404
    job_id = api.submit(spirals())["id"]
    response = api.client.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "x"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "last-event-id"]
    assert api.client.get(f"/v1/jobs/{job_id}/events", params={"after": -1}).status_code == 422
    api.client.post(f"/v1/jobs/{job_id}/cancel")


@pytest.fixture(scope="module")
def pg_api(tmp_path_factory):
    """An API without workers on a throwaway PostgreSQL schema."""
    url, drop = create_schema(postgres_url("the event stream on PostgreSQL"), "events")
    data_dir: Path = tmp_path_factory.mktemp("events-pg")
    running = Server(data_dir, workers=0, env={"NEEDLE_DATABASE_URL": url,
                                               # the safety-net poll must not be what delivers
                                               "NEEDLE_EVENTS_PUSH_POLL_SECONDS": "600"}).start()
    yield running, url
    running.stop()
    drop()


def test_postgres_worker_process_produces_the_events(pg_api):
    api, url = pg_api
    job_id, received = follow_with_worker(api, long_teacher(epochs=2), "--database-url", url)
    assert received[0].json()["status"] == "queued" and received[-1].event == "end"
    assert received[-1].json()["status"] == "succeeded"
    assert_matches_metrics(api.client, job_id, received)
