"""The committed openapi.json is current, and every route is documented with working examples."""
import json
from pathlib import Path

import pytest

from service.api.examples import JOB_EXAMPLES
from service.api.openapi import render_openapi
from service.specs import JobSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema():
    return json.loads(render_openapi())


def test_committed_openapi_json_is_current():
    committed = (ROOT / "openapi.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(render_openapi()), (
        "openapi.json is stale: run `needle-service openapi` and commit it")


def test_every_operation_has_a_summary_and_a_success_response(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert any(code.startswith("2") for code in operation["responses"]), (method, path)


def test_job_examples_are_valid_specs(schema):
    body = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == set(JOB_EXAMPLES)
    for example in body["examples"].values():
        JobSpec.model_validate(example["value"])
