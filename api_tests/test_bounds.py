"""Bounded cost for every request (issue 7 item 3), against the real server: refusals name the
bound and by how much, and hostile requests are refused without the API's memory growing."""
import io
import struct
import time
import zipfile

import numpy as np
import pytest

from .server import Server
from .specs import spirals

MiB = 1024 * 1024
ALLOWED_GROWTH = 40 * MiB  # the API's RSS may wobble, never by a refused request's size


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """A server with one worker and budgets small enough to reach in a test."""
    running = Server(tmp_path_factory.mktemp("bounds"), workers=1, env={
        "NEEDLE_MAX_UPLOAD_BYTES": str(64 * MiB),
        "NEEDLE_MAX_STEP_POINTS": "50", "NEEDLE_TIMEOUT_HEADER_S": "1",
        "NEEDLE_TIMEOUT_BODY_S": "1"}).start()
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
