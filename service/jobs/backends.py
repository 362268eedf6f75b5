"""Pick the job store from the settings: SQLite by default, PostgreSQL for postgresql:// URLs."""
from pathlib import Path

from ..settings import Settings
from .store import JobStore


def uses_sqlite(settings: Settings) -> bool:
    """Embedded mode: no database URL, or a sqlite: one."""
    return settings.database_url is None or settings.database_url.startswith("sqlite:")


def open_store(settings: Settings) -> JobStore:
    """Open (and migrate) the store that `settings.database_url` names."""
    url = settings.database_url
    if uses_sqlite(settings):
        store = _sqlite(settings, url)
    elif url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # psycopg only loads when asked for
        store = PostgresStore(url)
    else:
        raise ValueError(f"unsupported database_url {url!r}: use sqlite:///path or postgresql://...")
    store.migrate()
    return store


def _sqlite(settings: Settings, url: str | None) -> JobStore:
    from .sqlite import SQLiteStore
    return SQLiteStore(sqlite_path_from_url(url) if url else settings.sqlite_path())


def sqlite_path_from_url(url: str) -> Path:
    """sqlite:///relative.db, sqlite:////abs/path.db or sqlite:path.db -> a file path."""
    rest = url[len("sqlite:"):]
    if rest.startswith("///"):
        rest = rest[3:]
    elif rest.startswith("//"):
        rest = rest[2:]
    if not rest:
        raise ValueError(f"database_url {url!r} names no file")
    return Path(rest)
