"""One store fixture, parametrized over every backend: SQLite always, PostgreSQL when configured."""
import os
from typing import Callable

import pytest

from service.jobs.store import JobStore

POSTGRES_URL_ENV = "NEEDLE_TEST_POSTGRES_URL"


def _postgres_factory(request) -> Callable[[], JobStore]:
    """Stores over a fresh schema of their own (dropped afterwards), so tests, and engineers
    sharing one dev server, never see or wipe each other's tables."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_URL_ENV} is not: the PostgreSQL store must be tested")
        pytest.skip(f"set {POSTGRES_URL_ENV} to run the store contract against PostgreSQL")
    import uuid

    import psycopg
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    request.addfinalizer(lambda: _drop_postgres_schema(url, schema))
    from service.jobs.postgres import PostgresStore
    scoped = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    return lambda: PostgresStore(scoped)


def _drop_postgres_schema(url: str, schema: str) -> None:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path) -> Callable[[], JobStore]:
    """Makes independent store objects (own connections) over one fresh, migrated database."""
    if request.param == "sqlite":
        from service.jobs.sqlite import SQLiteStore
        path = tmp_path / "jobs.db"
        factory = lambda: SQLiteStore(path)  # noqa: E731
    else:
        factory = _postgres_factory(request)
    opened: list[JobStore] = []

    def make() -> JobStore:
        store = factory()
        opened.append(store)
        return store

    make().migrate()
    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory) -> JobStore:
    """A migrated, empty store."""
    return store_factory()
