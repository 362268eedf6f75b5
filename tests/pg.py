"""The PostgreSQL test server: its URL (skip, or fail under CI, when unset) and throwaway schemas.

Every test gets a schema of its own (dropped afterwards), so tests, and engineers sharing one dev
server, never see or wipe each other's tables.
"""
import os
import uuid
from collections.abc import Callable

import pytest

URL_ENV = "NEEDLE_TEST_POSTGRES_URL"


def postgres_url(what: str) -> str:
    """The test server's URL; skips the test when it is unset, or fails it when CI is set
    (`what` names the tests for the message)."""
    url = os.environ.get(URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {URL_ENV} is not: {what} must run")
        pytest.skip(f"set {URL_ENV} (source scripts/pg-test-server) to run {what}")
    return url


def scoped_url(url: str, schema: str) -> str:
    """The URL with its search_path set to `schema`, so every table the service makes lands there."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


def create_schema(url: str, prefix: str = "test") -> tuple[str, Callable[[], None]]:
    """A new empty schema: its scoped URL, and a function that drops it (with everything in it)."""
    import psycopg  # only when PostgreSQL is configured
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return scoped_url(url, schema), drop
