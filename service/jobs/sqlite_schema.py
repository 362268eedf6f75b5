"""Versioned SQLite schema: each migration runs once, recorded in `schema_version`."""
import sqlite3

# Append-only: never edit a shipped migration, add a new one.
MIGRATIONS: list[str] = [
    # 1: jobs queue, metrics, blobs, workers, datasets
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,
        param_count INTEGER NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        epoch INTEGER NOT NULL DEFAULT 0,
        epochs INTEGER NOT NULL DEFAULT 0,
        step INTEGER NOT NULL DEFAULT 0,
        steps INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 0,
        worker_id TEXT,
        lease_expires_at REAL,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        result TEXT,
        has_parameters INTEGER NOT NULL DEFAULT 0,
        idempotency_key TEXT UNIQUE,
        request_hash TEXT
    );
    CREATE INDEX jobs_status_seq ON jobs (status, seq);
    CREATE TABLE metrics (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        step INTEGER NOT NULL,
        vals BLOB NOT NULL
    );
    CREATE INDEX metrics_job_seq ON metrics (job_id, seq);
    CREATE TABLE checkpoints (job_id TEXT PRIMARY KEY, blob BLOB NOT NULL, saved_at REAL NOT NULL);
    CREATE TABLE parameters (job_id TEXT PRIMARY KEY, blob BLOB NOT NULL);
    CREATE TABLE workers (worker_id TEXT PRIMARY KEY, info TEXT NOT NULL, last_seen REAL NOT NULL);
    CREATE TABLE datasets (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        name TEXT,
        n_rows INTEGER NOT NULL,
        n_features INTEGER NOT NULL,
        n_classes INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        created_at REAL NOT NULL,
        blob BLOB NOT NULL
    );
    """,
    # 2: full specs move out of the jobs row, which keeps a brief one (inline arrays elided), so
    # polling and listing never read megabytes of inline data. Rows from version 1 keep their full
    # spec in jobs.spec too; readers brief it again (brief_spec is idempotent).
    """
    CREATE TABLE job_specs (job_id TEXT PRIMARY KEY, full_spec TEXT NOT NULL);
    INSERT INTO job_specs (job_id, full_spec) SELECT id, spec FROM jobs;
    """,
    # 3: tenants, API keys, priorities and fair claims. Idempotency keys become unique per
    # tenant: SQLite cannot drop the old column's UNIQUE, so that column is renamed out of the
    # way (and emptied: NULLs never collide) and a new one gets a (tenant, key) unique index.
    # claimed_at is each job's latest claim: a tenant's last start, for fair claims.
    """
    ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN claimed_at REAL;
    UPDATE jobs SET claimed_at = started_at;
    ALTER TABLE jobs RENAME COLUMN idempotency_key TO unused_global_idempotency_key;
    ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
    UPDATE jobs SET idempotency_key = unused_global_idempotency_key,
                    unused_global_idempotency_key = NULL;
    CREATE UNIQUE INDEX jobs_tenant_idempotency_key ON jobs (tenant, idempotency_key);
    CREATE INDEX jobs_queue_order ON jobs (status, priority, tenant, seq);
    CREATE INDEX jobs_tenant_claimed ON jobs (tenant, claimed_at);
    CREATE INDEX jobs_owner_status ON jobs (owner, status);
    CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq);
    ALTER TABLE datasets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
    ALTER TABLE datasets ADD COLUMN owner TEXT;
    CREATE INDEX datasets_owner ON datasets (owner);
    CREATE TABLE api_keys (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        admin INTEGER NOT NULL DEFAULT 0,
        max_active_jobs INTEGER,
        max_dataset_bytes INTEGER,
        max_priority INTEGER NOT NULL DEFAULT 0,
        rate_limit REAL,
        max_job_cost REAL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
    # 4: hyperparameter sweeps; their trials are jobs with a sweep_id (status 'waiting' while
    # max_parallel holds them back); early-stopping decisions are made once per (trial, epoch)
    """
    CREATE TABLE sweeps (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL,
        n_trials INTEGER NOT NULL,
        max_parallel INTEGER NOT NULL,
        metric TEXT NOT NULL,
        mode TEXT NOT NULL,
        early_stopping TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        tenant TEXT NOT NULL DEFAULT 'default',
        owner TEXT
    );
    ALTER TABLE jobs ADD COLUMN sweep_id TEXT;
    ALTER TABLE jobs ADD COLUMN trial INTEGER;
    ALTER TABLE jobs ADD COLUMN params TEXT;
    ALTER TABLE jobs ADD COLUMN objective REAL;
    ALTER TABLE jobs ADD COLUMN pruned_at INTEGER;
    CREATE INDEX jobs_sweep_trial ON jobs (sweep_id, trial);
    CREATE TABLE sweep_decisions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sweep_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        value REAL,
        keep INTEGER NOT NULL,
        UNIQUE (job_id, epoch)
    );
    CREATE INDEX sweep_decisions_rung ON sweep_decisions (sweep_id, epoch);
    CREATE INDEX sweeps_tenant_seq ON sweeps (tenant, seq);
    """,
    # 5: fair claims count each tenant's running jobs
    """
    CREATE INDEX jobs_running_tenant ON jobs (tenant) WHERE status = 'running';
    """,
    # 6: job names and tags (from the spec), so GET /v1/jobs can filter on them with an index
    """
    ALTER TABLE jobs ADD COLUMN name TEXT;
    CREATE INDEX jobs_name ON jobs (name);
    CREATE TABLE job_tags (job_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                           PRIMARY KEY (job_id, key));
    CREATE INDEX job_tags_key_value ON job_tags (key, value);
    """,
]


def apply_migrations(conn: sqlite3.Connection) -> int:
    """Bring the schema to the latest version inside one write transaction; returns the version."""
    conn.execute("BEGIN IMMEDIATE")  # serialises concurrent migrators
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for version, script in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration script on ';' (executescript would commit our transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]
