"""One store fixture, parametrized over every backend: SQLite always, PostgreSQL when configured."""
from typing import Callable

import pytest

from service.jobs.store import JobStore
from tests.pg import create_schema, postgres_url


def _postgres_factory(request) -> Callable[[], JobStore]:
    """Stores over a fresh schema of their own (dropped afterwards)."""
    url, drop = create_schema(postgres_url("the store contract against PostgreSQL"))
    request.addfinalizer(drop)
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
