"""Auth building blocks: loopback detection, the auth setting, the token bucket, key tokens."""
import pytest

from service.api.auth import auth_required, is_loopback, open_paths
from service.api.ratelimit import RateLimiter, retry_after_header
from service.jobs.keys import hash_token, new_token
from service.settings import Settings


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.0.1", True),
                                            ("::1", True), ("[::1]", True), ("localhost", True),
                                            ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
                                            ("example.com", False), ("", False)])
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def test_auth_auto_follows_the_bind_address_and_explicit_modes_win():
    assert not auth_required(Settings(host="127.0.0.1", workers=0))
    assert auth_required(Settings(host="0.0.0.0", workers=0))
    assert auth_required(Settings(host="127.0.0.1", auth="required", workers=0))
    assert not auth_required(Settings(host="0.0.0.0", auth="off", workers=0))


def test_open_paths_follow_the_settings():
    static = ("/healthz", "/", "/ui", "/static")  # the dashboard's files; its data needs the key
    assert open_paths(Settings(workers=0)) == (*static, "/readyz", "/docs", "/redoc", "/openapi.json")
    closed = Settings(workers=0, public_readyz=False, public_docs=False, public_metrics=True)
    assert open_paths(closed) == (*static, "/metrics")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_token_bucket_allows_bursts_of_r_then_refills_at_r_per_second():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.acquire("k", 3.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k", 3.0)
    assert wait == pytest.approx(1 / 3) and retry_after_header(wait) == "1"
    assert limiter.acquire("other", 3.0) == 0.0          # buckets are per key
    clock.now += 0.5                                       # 1.5 tokens back
    assert limiter.acquire("k", 3.0) == 0.0
    assert limiter.acquire("k", 3.0) == pytest.approx(0.5 / 3)
    clock.now += 100                                       # never more than R saved up
    assert [limiter.acquire("k", 3.0) for _ in range(4)][-1] > 0
    assert retry_after_header(2.01) == "3"


def test_tokens_are_random_prefixed_and_stored_as_sha256():
    first, second = new_token(), new_token()
    assert first != second and first.startswith("nsk_") and len(first) > 40
    assert hash_token(first) == hash_token(first) and len(hash_token(first)) == 64
    assert first not in hash_token(first)
