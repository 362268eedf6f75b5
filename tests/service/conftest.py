"""Fixtures shared by the service unit tests."""
import pytest

from service.jobs.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path):
    """A migrated SQLite store in a temporary directory."""
    s = SQLiteStore(tmp_path / "jobs.db")
    s.migrate()
    yield s
    s.close()
