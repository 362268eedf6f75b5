"""Job polls stay cheap: the store keeps a brief spec (inline arrays elided) apart from the full one."""
import json
import sqlite3

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.jobs.briefs import brief_spec
from service.jobs.sqlite import SQLiteStore
from service.jobs.sqlite_schema import MIGRATIONS, apply_migrations
from service.settings import Settings

X, Y = [[0.5, 1.0, 2.0], [3.0, 4.0, 5.0]], [0, 1]
INLINE_SPEC = {
    "model": {"type": "mlp_resnet", "in_features": 3, "hidden_dim": 4, "num_blocks": 1, "num_classes": 2},
    "data": {"type": "inline", "x": X, "y": Y,
             "validation": {"type": "data", "data": {"type": "inline", "x": X[:1], "y": Y[:1]}}},
}


def test_brief_spec_elides_inline_arrays_everywhere_and_is_idempotent():
    brief = brief_spec(INLINE_SPEC)
    assert brief["data"] == {"type": "inline", "n_rows": 2, "n_features": 3, "validation": {
        "type": "data", "data": {"type": "inline", "n_rows": 1, "n_features": 3}}}
    assert brief["model"] == INLINE_SPEC["model"]
    assert brief_spec(brief) == brief
    assert INLINE_SPEC["data"]["x"] == X  # the input is not modified
    teacher = {"model": {"type": "sequential", "layers": [{"type": "relu"}]}, "data": {"type": "teacher"}}
    assert brief_spec(teacher) == teacher


def test_reads_without_spec_carry_the_brief_and_claim_the_full_spec(store):
    created, _ = store.create_job(INLINE_SPEC, param_count=1, epochs=1, steps=1)
    assert created.spec == INLINE_SPEC and created.brief == brief_spec(INLINE_SPEC)
    polled = store.get_job(created.id, with_spec=False)
    assert polled.spec is None and polled.brief == brief_spec(INLINE_SPEC)
    assert store.get_job(created.id).spec == INLINE_SPEC
    listed, _ = store.list_jobs()
    assert listed[0].spec is None and listed[0].brief["data"]["n_rows"] == 2
    assert store.claim("w1", 30).spec == INLINE_SPEC


def test_the_jobs_row_does_not_hold_the_inline_arrays(store, tmp_path):
    job, _ = store.create_job(INLINE_SPEC, param_count=1, epochs=1, steps=1)
    row = sqlite3.connect(tmp_path / "jobs.db").execute("SELECT spec FROM jobs WHERE id = ?", (job.id,)).fetchone()
    assert json.loads(row[0]) == brief_spec(INLINE_SPEC)


def test_deleting_a_job_deletes_its_full_spec(store, tmp_path):
    job, _ = store.create_job(INLINE_SPEC, param_count=1, epochs=1, steps=1)
    store.request_cancel(job.id)
    store.delete_job(job.id)
    rows = sqlite3.connect(tmp_path / "jobs.db").execute("SELECT COUNT(*) FROM job_specs").fetchone()
    assert rows == (0,)


def test_version_1_rows_keep_their_full_spec_and_read_briefly(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    conn.executescript(MIGRATIONS[0] + "; CREATE TABLE schema_version (version INTEGER NOT NULL);"
                       "INSERT INTO schema_version VALUES (1);")
    conn.execute("INSERT INTO jobs (id, status, spec, param_count, created_at) VALUES ('old', 'queued', ?, 1, 0)",
                 (json.dumps(INLINE_SPEC),))
    assert apply_migrations(conn) == len(MIGRATIONS)
    store = SQLiteStore(tmp_path / "old.db")
    try:
        assert store.get_job("old", with_spec=False).brief == brief_spec(INLINE_SPEC)
        assert store.claim("w1", 30).spec == INLINE_SPEC
    finally:
        store.close()


@pytest.fixture
def client(tmp_path):
    with TestClient(create_app(Settings(data_dir=tmp_path, workers=0))) as test_client:
        yield test_client


def test_job_responses_show_the_brief_and_the_spec_route_the_full_spec(client):
    submitted = client.post("/v1/jobs", json=INLINE_SPEC)
    assert submitted.status_code == 202
    job = submitted.json()
    assert job["spec"]["data"]["n_rows"] == 2 and "x" not in job["spec"]["data"]
    assert client.get(f"/v1/jobs/{job['id']}").json()["spec"] == job["spec"]
    full = client.get(f"/v1/jobs/{job['id']}/spec").json()
    assert full["data"]["x"] == X and full["data"]["y"] == Y and full["model"] == job["spec"]["model"]
    assert full["training"]["batch_size"] == 32  # normalised: defaults filled in


def test_spec_of_an_unknown_job_is_404(client):
    assert client.get("/v1/jobs/nope/spec").status_code == 404
