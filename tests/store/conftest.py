"""One store fixture, parametrized over every backend: SQLite always, PostgreSQL when configured."""
import os
from typing import Callable

import pytest

from service.jobs.store import JobStore

POSTGRES_URL_ENV = "NEEDLE_TEST_POSTGRES_URL"


def _reset_postgres(url: str) -> None:
    """Drop and recreate schema public so every test starts from an empty database."""
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def _postgres_factory() -> Callable[[], JobStore]:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_URL_ENV} is not: the PostgreSQL store must be tested")
        pytest.skip(f"set {POSTGRES_URL_ENV} to run the store contract against PostgreSQL")
    _reset_postgres(url)
    from service.jobs.postgres import PostgresStore
    return lambda: PostgresStore(url)


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request, tmp_path) -> Callable[[], JobStore]:
    """Makes independent store objects (own connections) over one fresh, migrated database."""
    if request.param == "sqlite":
        from service.jobs.sqlite import SQLiteStore
        path = tmp_path / "jobs.db"
        factory = lambda: SQLiteStore(path)  # noqa: E731
    else:
        factory = _postgres_factory()
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
