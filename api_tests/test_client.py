"""service.client against the real server: every method, retries that never duplicate a job,
an event stream that survives dropped connections, and typed errors."""
import asyncio
import csv

import numpy as np
import pytest

from service.client import (AsyncClient, Client, Conflict, ConnectionFailed, Metrics, NotFound,
                            RetryPolicy, TooLarge, ValidationError)

from .proxy import FlakyProxy
from .specs import long_teacher, spirals, sweep_base

FAST_RETRY = RetryPolicy(attempts=5, base=0.05, cap=0.2)


@pytest.fixture(scope="module")
def client(server):
    with Client(str(server.client.base_url), poll_interval=0.05, retry=FAST_RETRY) as c:
        yield c


@pytest.fixture(scope="module")
def trained(client):
    return client.wait(client.submit(spirals(seed=5, epochs=2))["id"], timeout=60)


def upstream_port(server) -> int:
    return server.client.base_url.port


def test_submit_wait_get_list_and_delete(client):
    seen = []
    job = client.submit(spirals(seed=1, epochs=1))
    assert job["status"] in ("queued", "running")
    done = client.wait(job["id"], timeout=60, on_progress=seen.append)
    assert done["status"] == "succeeded" and done["result"]["epochs"] == 1
    assert seen[-1]["status"] == "succeeded"
    assert client.get(job["id"])["id"] == job["id"]
    assert client.spec(job["id"])["data"]["type"] == "spirals"
    assert job["id"] in [j["id"] for j in client.list(status="succeeded")]
    client.delete(job["id"])
    with pytest.raises(NotFound):
        client.get(job["id"])


def test_list_follows_every_page_and_respects_limit(client, trained):
    ids = [client.submit(spirals(seed=20 + i, epochs=1))["id"] for i in range(3)]
    listed = [job["id"] for job in client.list(page_size=2)]
    assert set(ids) <= set(listed) and len(listed) == len(set(listed))
    assert len(list(client.list(page_size=2, limit=3))) == 3
    for job_id in ids:
        client.wait(job_id, timeout=60)


def test_list_takes_every_filter_of_the_api(api_only):
    """status, tags, name_prefix and sweep_id, alone and together, across pages."""
    with Client(str(api_only.client.base_url), retry=FAST_RETRY) as idle:  # jobs stay queued
        def named(name, tags):
            return idle.submit({**spirals(seed=3, epochs=1), "name": name, "tags": tags})["id"]
        a = named("filter-a", {"team": "vision", "stage": "dev"})
        b = named("filter-b", {"team": "vision"})
        c = named("other-c", {"team": "nlp"})
        sweep = idle.submit_sweep({"base": sweep_base(epochs=1), "parameters": {
            "optimizer.lr": {"values": [0.01, 0.02, 0.03]}}, "max_parallel": 1})
        trials = [trial["job_id"] for trial in sweep["trials"]]
        ids = lambda **filters: [job["id"] for job in idle.list(page_size=1, **filters)]
        assert ids(tags={"team": "vision"}) == [b, a]
        assert ids(tags={"team": "vision", "stage": "dev"}) == [a]
        assert ids(name_prefix="filter-") == [b, a] and ids(name_prefix="Filter-") == []
        assert ids(name_prefix="other", tags={"team": "nlp"}, status="queued") == [c]
        assert ids(sweep_id=sweep["id"]) == trials[::-1]
        assert ids(sweep_id=sweep["id"], status="waiting") == trials[:0:-1]
        assert ids(sweep_id=sweep["id"], tags={"team": "vision"}) == []
        with pytest.raises(ValidationError) as bad:
            ids(sweep_id="not an id")
        assert bad.value.errors[0]["loc"] == ["query", "sweep_id"]
        idle.cancel_sweep(sweep["id"])


def test_metrics_are_numpy_series(client, trained):
    metrics = client.metrics(trained["id"])
    assert isinstance(metrics, Metrics)
    steps = trained["progress"]["steps"]
    np.testing.assert_array_equal(metrics.steps["step"], np.arange(1, steps + 1))
    assert metrics.steps["loss"].dtype == np.float64 and np.isfinite(metrics.steps["loss"]).all()
    np.testing.assert_array_equal(metrics.epochs["epoch"], [1, 2])
    assert metrics.epochs["val_error"][-1] == pytest.approx(trained["result"]["val_error"])


def test_parameters_in_every_format_agree(client, trained, tmp_path):
    npz = client.parameters(trained["id"])
    as_json = client.parameters(trained["id"], format="json")
    tensors = client.parameters(trained["id"], format="safetensors")
    assert list(npz) == list(as_json) and set(npz) == set(tensors)
    for name in npz:
        np.testing.assert_array_equal(npz[name], as_json[name])
        np.testing.assert_array_equal(npz[name], tensors[name])
    torch_layout = client.parameters(trained["id"], layout="torch")
    np.testing.assert_array_equal(torch_layout["0.weight"], npz["0.weight"].T)
    path = client.parameters(trained["id"], format="safetensors", output=tmp_path / "m.st")
    assert path.read_bytes() == client.parameters(trained["id"], format="safetensors", raw=True)


def test_predict_returns_arrays(client, trained, server):
    rows = np.random.default_rng(0).normal(size=(5, 2))
    prediction = client.predict(trained["id"], rows)
    direct = server.client.post(f"/v1/jobs/{trained['id']}/predict",
                                json={"x": rows.tolist()}).json()
    np.testing.assert_array_equal(prediction["classes"], direct["classes"])
    assert prediction["probabilities"].shape == (5, 3)
    assert client.predict(trained["id"], rows[0])["classes"].shape == (1,)


def test_evaluate_on_arrays_a_source_or_a_dataset(client, trained):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(40, 2)), rng.integers(0, 3, size=40)
    by_arrays = client.evaluate(trained["id"], x=x, y=y)  # an .npz body
    by_source = client.evaluate(trained["id"], {"type": "inline", "x": x.tolist(),
                                                "y": y.tolist()})
    dataset = client.upload_dataset(x, y)
    by_dataset = client.evaluate(trained["id"], {"type": "dataset", "id": dataset["id"]})
    client.delete_dataset(dataset["id"])
    classes = client.predict(trained["id"], x)["classes"]
    assert by_arrays["rows"] == 40 and by_arrays["task"] == "classification"
    assert by_arrays["accuracy"] == pytest.approx(np.mean(classes == y))
    assert by_arrays["confusion_matrix"][0][0] == int(np.sum((y == 0) & (classes == 0)))
    for other in (by_source, by_dataset):
        assert other["accuracy"] == by_arrays["accuracy"]
        assert other["loss"] == pytest.approx(by_arrays["loss"], rel=1e-6)
    with pytest.raises(ValidationError) as wrong:
        client.evaluate(trained["id"], x=np.zeros((4, 3)), y=np.zeros(4))
    assert wrong.value.errors[0]["loc"] == ["body"]
    with pytest.raises(ValidationError) as bad_source:
        client.evaluate(trained["id"], {"type": "spirals", "n_samples": -1})
    assert bad_source.value.errors[0]["loc"][:3] == ["body", "data", "spirals"]
    with pytest.raises(ValueError):
        client.evaluate(trained["id"], x=x)  # no y


def test_datasets_from_arrays_npz_and_csv(client, tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(30, 3)), rng.integers(0, 2, size=30)
    from_arrays = client.upload_dataset(x, y, name="arrays")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    from_npz = client.upload_dataset(path=tmp_path / "d.npz")
    with open(tmp_path / "d.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "target", "c"])
        writer.writerows([[*row[:2], label, row[2]] for row, label in zip(x.tolist(), y)])
    from_csv = client.upload_dataset(path=tmp_path / "d.csv", label_column="target")
    for dataset in (from_arrays, from_npz, from_csv):
        assert (dataset["n_rows"], dataset["n_features"]) == (30, 3)
    assert from_arrays["name"] == "arrays" and from_npz["name"] == "d.npz"
    listed = {d["id"] for d in client.list_datasets()}
    assert {from_arrays["id"], from_npz["id"], from_csv["id"]} <= listed
    assert client.get_dataset(from_csv["id"])["n_classes"] == int(y.max()) + 1
    for dataset in (from_arrays, from_npz, from_csv):
        client.delete_dataset(dataset["id"])
    with pytest.raises(NotFound):
        client.get_dataset(from_csv["id"])


def test_cancel_a_running_job(client):
    job = client.submit(long_teacher(epochs=200))
    cancelled = client.cancel(job["id"])
    assert cancelled["cancel_requested"] or cancelled["status"] == "cancelled"
    assert client.wait(job["id"], timeout=60)["status"] == "cancelled"
    with pytest.raises(Conflict):
        client.cancel(job["id"])


def test_typed_errors_for_404_409_and_422(client):
    with pytest.raises(NotFound) as missing:
        client.get("no-such-job")
    assert missing.value.status == 404
    running = client.submit(long_teacher(epochs=200))
    try:
        with pytest.raises(Conflict):
            client.delete(running["id"])
        with pytest.raises(Conflict):
            client.parameters(running["id"])
    finally:
        client.cancel(running["id"])
    bad = spirals()
    bad["model"]["in_features"] = 5
    with pytest.raises(ValidationError) as invalid:
        client.submit(bad)
    assert any(error["loc"][:3] == ["body", "model", "in_features"]
               for error in invalid.value.errors), invalid.value.errors
    assert "model.in_features: " in invalid.value.lines()[0]
    with pytest.raises(NotFound):
        list(client.events("no-such-job"))
    client.submit(spirals(seed=31, epochs=1), idempotency_key="typed-errors-1")
    with pytest.raises(Conflict):  # the same key with another body
        client.submit(spirals(seed=32, epochs=1), idempotency_key="typed-errors-1")


def test_submit_takes_a_pydantic_spec_and_wait_times_out(client):
    from service.specs import JobSpec
    job = client.submit(JobSpec.model_validate(long_teacher(epochs=200)))
    try:
        with pytest.raises(TimeoutError):
            client.wait(job["id"], timeout=0.2)
    finally:
        client.cancel(job["id"])
    assert client.wait(job["id"], timeout=60)["status"] == "cancelled"


def test_typed_error_for_413(api_only):
    with Client(str(api_only.client.base_url), retry=FAST_RETRY) as small:
        with pytest.raises(TooLarge) as too_large:
            small.upload_dataset(np.zeros((20_000, 2)), np.zeros(20_000, dtype=int))
    assert too_large.value.status == 413


def test_a_reply_lost_mid_submit_is_retried_into_exactly_one_job(client, server):
    # the first connection carries the request to the server, which creates the job; the
    # proxy then closes the socket before a byte of the reply gets back
    proxy = FlakyProxy(upstream_port(server), lambda n: "drop" if n == 0 else None)
    try:
        with Client(proxy.url, retry=FAST_RETRY) as flaky:
            spec = spirals(seed=77, epochs=1)
            before = {job["id"] for job in client.list()}
            job = flaky.submit(spec)
        assert proxy.broken == 1 and proxy.connections == 2
        created = [j for j in client.list() if j["id"] not in before]
        assert [j["id"] for j in created] == [job["id"]]
    finally:
        proxy.close()
    client.wait(job["id"], timeout=60)


def test_retries_are_bounded(client):
    with Client("http://127.0.0.1:9", retry=RetryPolicy(attempts=3, base=0.01, cap=0.02)) as dead:
        with pytest.raises(ConnectionFailed):
            dead.get("anything")


@pytest.mark.parametrize("transport", ["stream", "poll"])
def test_events_survive_dropped_connections_without_loss_or_repeats(client, server, transport):
    job = client.submit(long_teacher(epochs=3))
    # every one of the first six connections is cut 1,500 bytes into its response
    proxy = FlakyProxy(upstream_port(server), lambda n: 1500 if n < 6 else None)
    try:
        with Client(proxy.url, retry=RetryPolicy(attempts=10, base=0.02, cap=0.1),
                    poll_interval=0.05) as flaky:
            events = list(flaky.events(job["id"], transport=transport))
    finally:
        proxy.close()
    assert proxy.broken >= 3
    assert events[-1].type == "end" and events[-1].data["status"] == "succeeded"
    seqs = [event.id for event in events if event.type == "metric"]
    every = [point["seq"] for point in
             server.client.get(f"/v1/jobs/{job['id']}/metrics").json()["points"]]
    assert seqs == every and len(seqs) == job["progress"]["steps"] + 3
    statuses = [event.data["status"] for event in events if event.type == "status"]
    assert statuses[-1] == "succeeded"
    assert all(a != b for a, b in zip(events, events[1:]))  # no event twice in a row


def test_events_resume_after_a_seq(client, trained, server):
    every = [point["seq"] for point in
             server.client.get(f"/v1/jobs/{trained['id']}/metrics").json()["points"]]
    events = list(client.events(trained["id"], after=every[4]))
    assert [e.id for e in events if e.type == "metric"] == every[5:]
    assert [e.type for e in events][-1] == "end"


def test_async_client_has_the_same_methods(server, trained):
    async def main():
        async with AsyncClient(str(server.client.base_url), poll_interval=0.05,
                               retry=FAST_RETRY) as aclient:
            job = await aclient.submit(spirals(seed=9, epochs=1))
            done = await aclient.wait(job["id"], timeout=60)
            listed = [j["id"] async for j in aclient.list(limit=5)]
            events = [e async for e in aclient.events(job["id"])]
            metrics = await aclient.metrics(job["id"])
            params = await aclient.parameters(job["id"])
            prediction = await aclient.predict(job["id"], [[0.1, 0.2]])
            evaluation = await aclient.evaluate(job["id"], {"type": "spirals", "n_samples": 30})
            assert evaluation["rows"] == 30
            model = await aclient.to_needle(job["id"])
            assert (await aclient.spec(job["id"]))["model"]["type"] == "mlp_resnet"
            dataset = await aclient.upload_dataset(np.zeros((4, 2)), np.arange(4) % 2)
            assert dataset["id"] in [d["id"] for d in await aclient.list_datasets()]
            assert (await aclient.get_dataset(dataset["id"]))["n_rows"] == 4
            await aclient.delete_dataset(dataset["id"])
            with pytest.raises(NotFound):
                await aclient.get("missing")
            with pytest.raises(Conflict):
                await aclient.cancel(job["id"])
            await aclient.delete(job["id"])
            return done, listed, events, metrics, params, prediction, job, model
    done, listed, events, metrics, params, prediction, job, model = asyncio.run(main())
    assert not model.training
    assert done["status"] == "succeeded" and job["id"] in listed
    assert events[-1].type == "end"
    assert len(metrics.steps["loss"]) == done["progress"]["steps"]
    assert "0.weight" in params and prediction["classes"].shape == (1,)
