"""Every bad input is a clear 4xx, never a 500 or silent corruption (issue 7 item 5): one
regression test per case the attack pass found, against the real server."""
import io
import json

import numpy as np
import pytest

from .specs import spirals

JSON = {"content-type": "application/json"}


def nested_sequential(depth: int) -> dict:
    layer = {"type": "linear", "in_features": 2, "out_features": 3}
    for _ in range(depth):
        layer = {"type": "sequential", "layers": [layer]}
    return {"type": "sequential", "layers": [layer]}


def raw_spec(**replacements) -> bytes:
    """A valid spirals spec as JSON text with some values replaced by raw JSON tokens."""
    text = json.dumps(spirals())
    for key, token in replacements.items():
        text = text.replace(f'"{key}": 0.01', f'"{key}": {token}')
    return text.encode()


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def assert_clear_422(response, loc_prefix: list | None = None) -> list:
    assert response.status_code == 422, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail and all(e["msg"] for e in detail)
    if loc_prefix is not None:
        assert detail[0]["loc"][:len(loc_prefix)] == loc_prefix, detail
    return detail


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_non_finite_float_in_a_spec_is_a_422(api_only, token):
    response = api_only.client.post("/v1/jobs", content=raw_spec(lr=token), headers=JSON)
    assert_clear_422(response, ["body", "optimizer", "lr"])
    assert api_only.client.get("/v1/jobs").status_code == 200  # and nothing broke


def test_non_finite_float_anywhere_in_a_spec_is_a_422(api_only):
    spec = spirals()
    text = json.dumps(spec).replace('"fraction": 0.25', '"fraction": NaN')
    assert_clear_422(api_only.client.post("/v1/jobs", content=text, headers=JSON))
    spec["model"] = nested_sequential(0)
    spec["model"]["layers"].insert(0, {"type": "batchnorm1d", "dim": 2, "eps": 1.0})
    text = json.dumps(spec).replace('"eps": 1.0', '"eps": Infinity')
    assert_clear_422(api_only.client.post("/v1/jobs", content=text, headers=JSON))


@pytest.mark.parametrize("cursor", ["9" * 30, "-1", "abc", "1" * 19])
def test_oversized_or_malformed_cursor_is_a_422(api_only, cursor):
    assert_clear_422(api_only.client.get("/v1/jobs", params={"cursor": cursor}),
                     ["query", "cursor"])


@pytest.mark.parametrize("after", [2**63, 2**64, 10**30, -1])
def test_out_of_range_metrics_after_is_a_422(api_only, after):
    job_id = api_only.submit(spirals())["id"]
    assert_clear_422(api_only.client.get(f"/v1/jobs/{job_id}/metrics", params={"after": after}),
                     ["query", "after"])
    assert api_only.client.get(f"/v1/jobs/{job_id}/metrics",
                               params={"after": 2**63 - 1}).json()["points"] == []


@pytest.mark.parametrize("path", ["/v1/jobs/a%00b", "/v1/jobs/%ED%A0%80", "/v1/jobs/" + "a" * 65,
                                  "/v1/jobs/a%00b/metrics", "/v1/datasets/a%00b",
                                  "/v1/datasets/%F0%9F%98%80"])
def test_nul_surrogate_or_overlong_id_is_a_422(api_only, path):
    assert_clear_422(api_only.client.get(path), ["path"])


def test_nul_or_surrogate_in_a_dataset_id_in_a_spec_is_a_422(api_only):
    # NUL fails the id pattern; a lone surrogate (sent as the escape \ud800) is not even JSON
    for bad, loc in (("a\u0000b", ["body", "data", "id"]), ("\ud800", ["body"])):
        spec = {**spirals(), "data": {"type": "dataset", "id": bad}}
        text = json.dumps(spec)  # ensure_ascii: the lone surrogate travels as \ud800
        assert_clear_422(api_only.client.post("/v1/jobs", content=text, headers=JSON), loc)


def test_unknown_but_well_formed_id_is_still_a_404(api_only):
    assert api_only.client.get("/v1/jobs/0123456789abcdef0123456789abcdef").status_code == 404


def test_json_nested_a_thousand_levels_deep_is_a_422(api_only):
    body = b'{"model": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    for path in ("/v1/jobs", "/v1/datasets"):
        assert_clear_422(api_only.client.post(path, content=body, headers=JSON), ["body"])
    job_id = api_only.submit(spirals())["id"]
    deep_x = b'{"x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    response = api_only.client.post(f"/v1/jobs/{job_id}/predict", content=deep_x, headers=JSON)
    assert response.status_code in (409, 422), response.text  # never a 500


@pytest.mark.parametrize("depth", [40, 150])
def test_deeply_nested_sequential_is_a_422(api_only, depth):
    spec = {**spirals(), "model": nested_sequential(depth)}
    detail = assert_clear_422(api_only.client.post("/v1/jobs", json=spec))
    assert "nested" in detail[0]["msg"] or "recursion" in detail[0]["msg"]


def test_too_many_modules_is_a_422(api_only):
    spec = {**spirals(), "model": {"type": "mlp_resnet", "in_features": 2, "hidden_dim": 2,
                                   "num_blocks": 2000, "num_classes": 3}}
    detail = assert_clear_422(api_only.client.post("/v1/jobs", json=spec), ["body", "model"])
    assert "modules" in detail[0]["msg"]


def test_malformed_utf8_body_is_a_documented_422(api_only):
    response = api_only.client.post("/v1/jobs", content=b'{"model": "\xff\xfe"}', headers=JSON)
    assert_clear_422(response, ["body"])
    documented = api_only.client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]
    assert "422" in documented["responses"]


def test_empty_idempotency_key_is_a_422(api_only):
    before = len(api_only.client.get("/v1/jobs", params={"limit": 500}).json()["items"])
    for key in ("", "two words", "\u00e9t\u00e9", "k" * 201):
        response = api_only.client.post("/v1/jobs", json=spirals(),
                                        headers={"Idempotency-Key": key.encode()})
        assert_clear_422(response, ["header", "idempotency-key"])
    assert len(api_only.client.get("/v1/jobs", params={"limit": 500}).json()["items"]) == before


@pytest.mark.parametrize("labels, dtype", [([0, 2**63 - 1], np.int64), ([0, 2**64 - 1], np.uint64),
                                           ([0, 2**31], np.int64), ([0, -1], np.int64)])
def test_huge_or_negative_npz_labels_are_a_422(api_only, labels, dtype):
    data = npz_bytes(x=np.zeros((2, 2)), y=np.array(labels, dtype=dtype))
    response = api_only.client.post("/v1/datasets", files={"file": ("d.npz", data)})
    detail = assert_clear_422(response, ["body", "file"])
    assert "labels" in detail[0]["msg"]


def test_huge_json_labels_are_a_422(api_only):
    # JSON y values beyond a class label are regression targets now (h10): never a 500, never -1
    response = api_only.client.post("/v1/datasets", json={"x": [[0.0], [1.0]], "y": [0, 2**63 - 1]})
    assert response.status_code == 201 and response.json()["n_classes"] == 0, response.text
    spec = {**spirals(), "data": {"type": "inline", "x": [[0.0, 1.0]], "y": [2**64 - 1]}}
    assert_clear_422(api_only.client.post("/v1/jobs", json=spec), ["body", "data"])


def test_control_characters_in_a_dataset_name_are_a_422(api_only):
    for name in ("a\u0000b", "tab\there"):
        response = api_only.client.post("/v1/datasets", json={"name": name, "x": [[0.0]], "y": [0]})
        assert_clear_422(response, ["body", "name"])


def test_405_lists_every_method_of_the_path(api_only):
    response = api_only.client.patch("/v1/jobs/0123456789abcdef0123456789abcdef")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
    response = api_only.client.put("/v1/jobs")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
    response = api_only.client.delete("/v1/datasets")
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_non_json_content_type_is_a_documented_415(api_only):
    response = api_only.client.post("/v1/jobs", content=json.dumps(spirals()),
                                    headers={"content-type": "text/plain"})
    assert response.status_code == 415
    documented = api_only.client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]
    assert "415" in documented["responses"]


def test_malformed_multipart_is_a_documented_422(api_only):
    body = b"--b\r\n25552657921555--b--\r\n"
    response = api_only.client.post("/v1/datasets", content=body,
                                    headers={"content-type": "multipart/form-data; boundary=b"})
    assert_clear_422(response, ["body"])


def test_a_sweep_parameter_that_is_no_distribution_is_a_422(api_only):
    # found by schemathesis: a list where a distribution belongs was a 500
    base = spirals()
    for bad in ([], 3, "values"):
        response = api_only.client.post("/v1/sweeps", json={
            "base": base, "parameters": {"optimizer.lr": bad}})
        assert_clear_422(response, ["body", "parameters"])
