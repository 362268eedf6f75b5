"""Bounded cost for every request (issue 7 item 3), against the real server: refusals name the
bound and by how much, and hostile requests are refused without the API's memory growing."""
import io
import struct
import threading
import time
import zipfile

import httpx

import numpy as np
import pytest

from .server import Server
from .specs import spirals

MiB = 1024 * 1024
ALLOWED_GROWTH = 40 * MiB  # the API's RSS may wobble, never by a refused request's size
PREDICT_BUDGET = 4 * MiB   # the API's inference budget in these tests


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """A server with one worker and budgets small enough to reach in a test."""
    running = Server(tmp_path_factory.mktemp("bounds"), workers=1, env={
        "NEEDLE_MAX_UPLOAD_BYTES": str(64 * MiB),
        "NEEDLE_MAX_STEP_POINTS": "50", "NEEDLE_TIMEOUT_HEADER_S": "1",
        "NEEDLE_TIMEOUT_BODY_S": "1", "NEEDLE_PREDICT_MEMORY_BYTES": str(PREDICT_BUDGET)}).start()
    yield running
    running.stop()


def npy_header(shape: tuple, dtype: str = "<f4") -> bytes:
    """A version-1.0 .npy header describing `shape` (whatever data follows)."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin-1")


def zip_bomb(inflated_bytes: int) -> bytes:
    """An .npz whose x.npy inflates to `inflated_bytes` of zeros, written in 1 MiB pieces."""
    buffer = io.BytesIO()
    floats = inflated_bytes // 4
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(npy_header((floats // 10, 10)))
            chunk = bytes(MiB)
            for _ in range((floats // 10) * 10 * 4 // MiB):
                member.write(chunk)
        archive.writestr("y.npy", npy_header((floats // 10,), "<i8") + bytes(8 * (floats // 10)))
    return buffer.getvalue()


def upload(server, data: bytes):
    return server.client.post("/v1/datasets", files={"file": ("d.npz", data)})


def test_zip_bomb_is_refused_before_inflating(bounded):
    bomb = zip_bomb(305 * MiB)
    assert len(bomb) < 2 * MiB
    before = bounded.rss()
    response = upload(bounded, bomb)
    assert response.status_code == 422, response.text
    assert "inflate" in response.json()["detail"][0]["msg"]
    assert bounded.rss() - before < ALLOWED_GROWTH


def test_zip_bomb_as_a_predict_body_is_refused_before_inflating(bounded):
    job = bounded.train(spirals())
    bomb = zip_bomb(305 * MiB)
    before = bounded.rss()
    response = bounded.client.post(f"/v1/jobs/{job['id']}/predict", content=bomb,
                                   headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 422, response.text
    assert "inflate" in response.json()["detail"][0]["msg"]
    assert bounded.rss() - before < ALLOWED_GROWTH


@pytest.mark.parametrize("header, data", [
    (npy_header((10**9, 10)), bytes(80)),            # claims 40 GB, holds 80 bytes
    (npy_header((4, 2), "|O"), bytes(64)),           # object array: never unpickled
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': 'zz'}\n", bytes(8)),   # garbage header
    (b"not an npy file at all", b""),
])
def test_forged_array_header_is_a_422(bounded, header, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", header + data)
        archive.writestr("y.npy", npy_header((4,), "<i8") + bytes(32))
    before = bounded.rss()
    response = upload(bounded, buffer.getvalue())
    assert response.status_code == 422, response.text
    assert bounded.rss() - before < ALLOWED_GROWTH


def test_billion_step_spec_is_refused_with_the_bound_and_the_excess(bounded):
    spec = spirals(epochs=1000, batch_size=1)
    spec["data"] = {"type": "spirals", "n_samples": 1_000_000}
    before = bounded.rss()
    response = bounded.client.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    messages = " ".join(e["msg"] for e in response.json()["detail"])
    assert "1000000000 optimizer steps" in messages and "x over" in messages
    assert bounded.rss() - before < ALLOWED_GROWTH


def test_flops_and_memory_bounds_name_the_field_and_the_excess(bounded):
    wide = {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 1000, "num_blocks": 1,
            "num_classes": 3}
    spec = {**spirals(epochs=200), "model": wide}
    spec["data"] = {"type": "spirals", "n_samples": 1_000_000}
    detail = bounded.client.post("/v1/jobs", json=spec).json()["detail"]
    assert any("FLOP" in e["msg"] and "cap" in e["msg"] for e in detail), detail
    spec = {**spirals(batch_size=200_000), "model": wide}
    detail = bounded.client.post("/v1/jobs", json=spec).json()["detail"]
    memory = [e for e in detail if e["loc"] == ["body", "training", "batch_size"]]
    assert memory and "per-worker budget" in memory[0]["msg"], detail


def test_every_job_gets_the_default_runtime_limit_in_its_spec(bounded):
    job = bounded.submit(spirals())
    assert job["spec"]["training"]["stopping"]["max_runtime_s"] == 3600
    own = bounded.submit(spirals(stopping={"max_runtime_s": 5}))
    assert own["spec"]["training"]["stopping"]["max_runtime_s"] == 5
    too_long = bounded.client.post("/v1/jobs", json=spirals(stopping={"max_runtime_s": 10**7}))
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["body", "training", "stopping", "max_runtime_s"]


def test_step_metrics_beyond_the_budget_are_averaged_in_groups(bounded):
    # 150 training rows / batch 10 = 15 steps per epoch, 8 epochs = 120 steps > 50 points
    job = bounded.train(spirals(epochs=8, batch_size=10))
    points = bounded.client.get(f"/v1/jobs/{job['id']}/metrics").json()["points"]
    steps = [p for p in points if p["kind"] == "step"]
    assert 8 <= len(steps) <= 50 + 8            # groups of 3 steps (ceil(120 / 50)), per epoch
    assert all(set(p["values"]) == {"loss", "lr"} for p in steps)  # the keys of a raw point
    assert [p["step"] for p in steps][:5] == [3, 6, 9, 12, 15]
    assert steps[-1]["step"] == 120
    small = bounded.train(spirals(epochs=2, batch_size=10))  # 30 steps: every step, exactly
    points = bounded.client.get(f"/v1/jobs/{small['id']}/metrics").json()["points"]
    assert [p["step"] for p in points if p["kind"] == "step"] == list(range(1, 31))


def one_step(model: dict) -> dict:
    """A spirals job of `model` trained for a single step (its weights are what matters here)."""
    return {**spirals(), "model": model,
            "training": {"epochs": 1, "batch_size": 8, "stopping": {"max_steps": 1}}}


def hidden(width: int) -> dict:
    return {"type": "sequential", "layers": [
        {"type": "linear", "in_features": 2, "out_features": width}, {"type": "relu"},
        {"type": "linear", "in_features": width, "out_features": 3}]}


@pytest.fixture(scope="module")
def wide_job(bounded):
    """A 200,000-wide hidden layer: a row holds ~1.6 MB in a forward pass, so 1,000 rows at once
    would need 1.6 GB; the 4 MiB budget runs them 2 rows at a time."""
    return bounded.train(one_step(hidden(200_000)), timeout=120)


def rows(n: int, seed: int = 0) -> list:
    return np.random.default_rng(seed).normal(size=(n, 2)).round(3).tolist()


def test_predict_runs_in_chunks_within_its_memory_budget(bounded, wide_job):
    url = f"/v1/jobs/{wide_job['id']}/predict"
    assert bounded.client.post(url, json={"x": rows(2)}).status_code == 200  # build, cache
    peak = bounded.peak_rss()
    response = bounded.client.post(url, json={"x": rows(1000)}, timeout=120)
    assert response.status_code == 200, response.text
    assert len(response.json()["classes"]) == 1000 and response.headers["x-model-cache"] == "hit"
    assert bounded.peak_rss() - peak < 100 * MiB   # chunks of ~3 MiB, not 1.6 GB at once


def test_chunked_predictions_agree_with_the_model_run_locally(bounded, wide_job):
    x = np.asarray(rows(50, seed=3), dtype=np.float32)
    response = bounded.client.post(f"/v1/jobs/{wide_job['id']}/predict", json={"x": x.tolist()})
    assert response.status_code == 200, response.text
    blob = bounded.client.get(f"/v1/jobs/{wide_job['id']}/parameters?format=npz").content
    with np.load(io.BytesIO(blob), allow_pickle=False) as p:  # needle layout: weight (in, out)
        hidden_rows = np.maximum(x @ p["0.weight"] + p["0.bias"], 0)   # (50, 200000)
        logits = hidden_rows @ p["2.weight"] + p["2.bias"]             # (50, 3)
    answer = response.json()
    np.testing.assert_allclose(answer["logits"], logits, rtol=1e-4, atol=1e-4)
    assert answer["classes"] == logits.argmax(axis=1).tolist()


def test_a_row_over_the_inference_budget_is_refused_without_memory_growth(bounded):
    job = bounded.train(one_step(hidden(600_000)), timeout=120)  # ~4.8 MB per row
    peak = bounded.peak_rss()
    response = bounded.client.post(f"/v1/jobs/{job['id']}/predict", json={"x": rows(1)})
    assert response.status_code == 422, response.text
    message = response.json()["detail"][0]["msg"]
    assert "one row needs an estimated 4.6 MiB" in message and "budget of 4.0 MiB by 591.5 KiB" in message
    evaluated = bounded.client.post(f"/v1/jobs/{job['id']}/evaluate",
                                    json={"data": {"type": "spirals", "n_samples": 30}})
    assert evaluated.status_code == 422 and "one row needs" in evaluated.text
    assert bounded.peak_rss() - peak < ALLOWED_GROWTH


def test_an_answer_over_the_budget_is_refused_without_memory_growth(bounded):
    job = bounded.train(one_step({"type": "sequential", "layers": [
        {"type": "linear", "in_features": 2, "out_features": 20_000}]}), timeout=120)
    url = f"/v1/jobs/{job['id']}/predict"
    peak = bounded.peak_rss()
    response = bounded.client.post(url, json={"x": rows(100)})
    assert response.status_code == 422, response.text
    message = response.json()["detail"][0]["msg"]
    assert "100 rows x 20000 outputs" in message and "send at most 1 rows" in message
    assert bounded.peak_rss() - peak < ALLOWED_GROWTH
    assert bounded.client.post(url, json={"x": rows(1)}).status_code == 200
    refused = bounded.client.post(f"/v1/jobs/{job['id']}/evaluate",
                                  json={"data": {"type": "spirals", "n_samples": 30}})
    assert refused.status_code == 422 and "confusion matrix of 20000 classes" in refused.text


def test_a_json_body_too_costly_to_parse_is_refused_before_parsing(bounded):
    job = bounded.train(spirals())
    body = b'{"x":[' + b",".join([b"[0,1]"] * 17_000) + b"]}"  # ~4.4 MB of Python lists
    peak = bounded.peak_rss()
    response = bounded.client.post(f"/v1/jobs/{job['id']}/predict", content=body,
                                   headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    message = response.json()["detail"][0]["msg"]
    assert "parsing this JSON body" in message and "send the arrays as an .npz body" in message
    assert bounded.peak_rss() - peak < ALLOWED_GROWTH


def test_healthz_answers_fast_while_a_big_predict_runs(bounded, wide_job):
    x = rows(2000, seed=1)
    done, latencies = threading.Event(), []

    def big_predict():
        with httpx.Client(base_url=bounded.client.base_url, timeout=300) as client:
            assert client.post(f"/v1/jobs/{wide_job['id']}/predict", json={"x": x}).status_code == 200
        done.set()

    worker = threading.Thread(target=big_predict)
    worker.start()
    time.sleep(0.3)
    while not done.is_set():
        start = time.monotonic()
        assert bounded.client.get("/healthz").status_code == 200
        latencies.append(time.monotonic() - start)
        time.sleep(0.05)
    worker.join()
    assert len(latencies) >= 3, "the predict finished before health could be probed"
    assert max(latencies) < 1.0, latencies


def test_the_model_is_built_once_then_cached_and_forgotten_with_its_job(bounded):
    deep = one_step({"type": "mlp_resnet", "in_features": 2, "hidden_dim": 2, "num_blocks": 550,
                     "num_classes": 3})   # 4,954 modules: building costs more than running
    job = bounded.train(deep, timeout=120)
    url = f"/v1/jobs/{job['id']}/predict"
    timings, sources, answers = [], [], []
    for _ in range(4):
        start = time.monotonic()
        response = bounded.client.post(url, json={"x": [[0.1, 0.2]]})
        timings.append(time.monotonic() - start)
        assert response.status_code == 200, response.text
        sources.append(response.headers["x-model-cache"])
        answers.append(response.json())
    assert sources == ["miss", "hit", "hit", "hit"]
    assert all(answer == answers[0] for answer in answers)
    assert min(timings[1:]) < timings[0], timings   # the 4,954-module build is paid once
    assert bounded.client.delete(f"/v1/jobs/{job['id']}").status_code == 204
    gone = bounded.client.post(url, json={"x": [[0.1, 0.2]]})
    assert gone.status_code == 404 and gone.json() == {"detail": f"job {job['id']} not found"}


def test_idle_and_trickling_connections_are_closed(bounded):
    import socket
    host, port = bounded.client.base_url.host, bounded.client.base_url.port
    for first_bytes in (b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):  # idle, then slowloris
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(first_bytes)
            start = time.monotonic()
            assert sock.recv(1024) == b""   # the server hung up
            assert time.monotonic() - start < 8


def test_a_stalled_body_is_a_408(bounded):
    import socket
    host, port = bounded.client.base_url.host, bounded.client.base_url.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"model\"")
        assert sock.recv(4096).startswith(b"HTTP/1.1 408")
