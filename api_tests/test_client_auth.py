"""The client and the command line against a server that requires API keys: typed 401 and 429
errors, and keys from --api-key / NEEDLE_API_KEY."""
import json
import os
import subprocess

import pytest

from service.client import Client, RateLimited, Unauthorized

from .server import Server
from .test_cli import CLI


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("client-auth"), workers=0,
                    env={"NEEDLE_AUTH": "required", "NEEDLE_AUTH_CACHE_SECONDS": "0.2"})
    keys = {"user": server.create_key("user"),
            "slow": server.create_key("slow", "--rate-limit", "1")}
    server.start()
    yield server, keys
    server.stop()


def test_no_key_is_unauthorized_and_a_key_works(secured):
    server, keys = secured
    with Client(str(server.client.base_url)) as anonymous:
        with pytest.raises(Unauthorized) as refused:
            list(anonymous.list())
    assert refused.value.status == 401
    with Client(str(server.client.base_url), api_key=keys["user"]) as user:
        assert list(user.list()) == [] and user.list_datasets() == []


def test_rate_limited_carries_retry_after(secured):
    server, keys = secured
    with Client(str(server.client.base_url), api_key=keys["slow"]) as slow:
        with pytest.raises(RateLimited) as limited:
            for _ in range(10):
                slow.list_datasets()
    assert limited.value.status == 429 and limited.value.retry_after >= 1


def test_cli_takes_the_key_from_the_option_or_the_environment(secured):
    server, keys = secured
    env = {**os.environ, "NEEDLE_URL": str(server.client.base_url)}
    env.pop("NEEDLE_API_KEY", None)
    refused = subprocess.run([str(CLI), "jobs", "list"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "Unauthorized (HTTP 401)" in refused.stderr
    assert "Traceback" not in refused.stderr
    by_option = subprocess.run([str(CLI), "datasets", "list", "--json", "--api-key",
                                keys["user"]], env=env, capture_output=True, text=True, timeout=60)
    assert by_option.returncode == 0 and json.loads(by_option.stdout) == []
    by_env = subprocess.run([str(CLI), "jobs", "list", "--json"], capture_output=True, text=True,
                            env={**env, "NEEDLE_API_KEY": keys["user"]}, timeout=60)
    assert by_env.returncode == 0 and json.loads(by_env.stdout) == []
