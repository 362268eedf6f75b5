"""The client and the command line against a server that requires API keys: typed 401 and 429
errors, 429s waited out for their Retry-After within a bounded budget, and keys from
--api-key / NEEDLE_API_KEY."""
import json
import os
import subprocess
import time

import pytest

from service.client import Client, RateLimited, RetryPolicy, Unauthorized

from .server import Server
from .specs import spirals
from .test_cli import CLI

NO_WAITING = RetryPolicy(attempts=5, base=0.05, cap=0.2, rate_limit_wait=0.5)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("client-auth"), workers=0,
                    env={"NEEDLE_AUTH": "required", "NEEDLE_AUTH_CACHE_SECONDS": "0.2"})
    keys = {"user": server.create_key("user"),
            "slow": server.create_key("slow", "--rate-limit", "1"),
            "trickle": server.create_key("trickle", "--rate-limit", "1")}
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
    """A Retry-After (1 s) beyond the policy's 429 budget (0.5 s) is raised at once."""
    server, keys = secured
    with Client(str(server.client.base_url), api_key=keys["slow"], retry=NO_WAITING) as slow:
        started = time.monotonic()
        with pytest.raises(RateLimited) as limited:
            for _ in range(10):
                slow.list_datasets()
    assert limited.value.status == 429 and limited.value.retry_after >= 1
    assert time.monotonic() - started < 1.0  # never slept on a Retry-After


def test_retryable_calls_and_submit_wait_out_a_429(secured):
    """At 1 request/s, two submits and two reads all succeed, each 429 waited out for its
    Retry-After (so they take at least ~3 s); the submits create exactly two jobs."""
    server, keys = secured
    with Client(str(server.client.base_url), api_key=keys["trickle"]) as trickle:
        started = time.monotonic()
        jobs = [trickle.submit(spirals(seed=seed, epochs=1)) for seed in (1, 2)]
        assert trickle.get(jobs[0]["id"])["id"] == jobs[0]["id"]
        listed = [job["id"] for job in trickle.list()]
        elapsed = time.monotonic() - started
    assert sorted(listed) == sorted(job["id"] for job in jobs)
    assert elapsed >= 2.5, f"4 requests at 1/s took {elapsed:.2f} s: were 429s waited out?"


def test_a_429_on_a_call_that_is_not_resent_is_raised(secured):
    """Uploads (no idempotency key) are never resent: their 429 reaches the caller even under
    the default policy (resent, ten uploads at 1/s would all succeed)."""
    server, keys = secured
    with Client(str(server.client.base_url), api_key=keys["slow"]) as patient:
        with pytest.raises(RateLimited):
            for _ in range(10):
                patient.upload_dataset([[0.0, 1.0]], [0])


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


def test_the_event_stream_waits_out_a_429(secured):
    """events() reads the job, then opens the stream at once: at 1 request/s the stream's
    first answer is a 429, which it waits out rather than failing."""
    server, keys = secured
    with Client(str(server.client.base_url), api_key=keys["trickle"]) as trickle:
        job = trickle.submit(spirals(seed=3, epochs=1))  # workers=0: it stays queued
        time.sleep(1.2)  # a token for the cancel, which is not resent on a 429
        trickle.cancel(job["id"])
        events = list(trickle.events(job["id"], transport="stream"))
    assert events[-1].type == "end" and events[-1].data["status"] == "cancelled"
