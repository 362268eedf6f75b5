"""Versioned PostgreSQL schema: each migration runs once, recorded in `schema_version`."""
import psycopg

# Append-only: never edit a shipped migration, add a new one. Result and metric values are JSON
# text rather than JSONB because they may legitimately hold NaN/inf, which JSONB rejects.
MIGRATIONS: list[list[str]] = [
    [  # 1: jobs queue, metrics, blobs, workers, datasets
        """CREATE TABLE jobs (
            seq BIGSERIAL NOT NULL UNIQUE,
            id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            spec JSONB NOT NULL,
            param_count BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            finished_at DOUBLE PRECISION,
            epoch INTEGER NOT NULL DEFAULT 0,
            epochs INTEGER NOT NULL DEFAULT 0,
            step INTEGER NOT NULL DEFAULT 0,
            steps INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 0,
            worker_id TEXT,
            lease_expires_at DOUBLE PRECISION,
            cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
            error TEXT,
            result TEXT,
            has_parameters BOOLEAN NOT NULL DEFAULT FALSE,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT)""",
        # Only queued rows are scanned by claim(); a partial index keeps that scan tiny.
        "CREATE INDEX jobs_queued_seq ON jobs (seq) WHERE status = 'queued'",
        "CREATE INDEX jobs_status_seq ON jobs (status, seq)",
        """CREATE TABLE metrics (
            seq BIGSERIAL PRIMARY KEY,
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            step INTEGER NOT NULL,
            vals TEXT NOT NULL)""",
        "CREATE INDEX metrics_job_seq ON metrics (job_id, seq)",
        """CREATE TABLE checkpoints (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            blob BYTEA NOT NULL,
            saved_at DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE parameters (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            blob BYTEA NOT NULL)""",
        """CREATE TABLE workers (
            worker_id TEXT PRIMARY KEY,
            info JSONB NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL)""",
        """CREATE TABLE datasets (
            seq BIGSERIAL NOT NULL UNIQUE,
            id TEXT PRIMARY KEY,
            name TEXT,
            n_rows INTEGER NOT NULL,
            n_features INTEGER NOT NULL,
            n_classes INTEGER NOT NULL,
            size_bytes BIGINT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            blob BYTEA NOT NULL)""",
    ],
    [  # 2: full specs (possibly megabytes of inline data) leave the jobs row, which keeps the
       # brief spec, so polls and listings stay cheap. Version-1 rows keep their full spec in
       # jobs.spec as well; readers brief it again (brief_spec is idempotent).
        """CREATE TABLE job_specs (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            full_spec JSONB NOT NULL)""",
        "INSERT INTO job_specs (job_id, full_spec) SELECT id, spec FROM jobs",
    ],
    [  # 3: tenants, API keys, priorities and fair claims; idempotency keys unique per tenant.
       # claimed_at is each job's latest claim: a tenant's last start, for fair claims.
        """ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default',
                         ADD COLUMN owner TEXT,
                         ADD COLUMN priority INTEGER NOT NULL DEFAULT 0,
                         ADD COLUMN claimed_at DOUBLE PRECISION""",
        "UPDATE jobs SET claimed_at = started_at",
        "ALTER TABLE jobs DROP CONSTRAINT jobs_idempotency_key_key",
        "CREATE UNIQUE INDEX jobs_tenant_idempotency_key ON jobs (tenant, idempotency_key)",
        "CREATE INDEX jobs_queued_order ON jobs (priority DESC, tenant, seq) WHERE status = 'queued'",
        "CREATE INDEX jobs_running_tenant ON jobs (tenant) WHERE status = 'running'",
        "CREATE INDEX jobs_tenant_claimed ON jobs (tenant, claimed_at)",
        "CREATE INDEX jobs_owner_status ON jobs (owner, status)",
        "CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq)",
        """ALTER TABLE datasets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default',
                             ADD COLUMN owner TEXT""",
        "CREATE INDEX datasets_owner ON datasets (owner)",
        """CREATE TABLE api_keys (
            seq BIGSERIAL NOT NULL UNIQUE,
            name TEXT PRIMARY KEY,
            tenant TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            admin BOOLEAN NOT NULL DEFAULT FALSE,
            max_active_jobs INTEGER,
            max_dataset_bytes BIGINT,
            max_priority INTEGER NOT NULL DEFAULT 0,
            rate_limit DOUBLE PRECISION,
            max_job_cost DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION)""",
    ],
    [  # 4: hyperparameter sweeps; their trials are jobs with a sweep_id (status 'waiting' while
       # max_parallel holds them back); early-stopping decisions are made once per (trial, epoch)
        """CREATE TABLE sweeps (
            seq BIGSERIAL NOT NULL UNIQUE,
            id TEXT PRIMARY KEY,
            spec TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            n_trials INTEGER NOT NULL,
            max_parallel INTEGER NOT NULL,
            metric TEXT NOT NULL,
            mode TEXT NOT NULL,
            early_stopping TEXT,
            cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
            tenant TEXT NOT NULL DEFAULT 'default',
            owner TEXT)""",
        "ALTER TABLE jobs ADD COLUMN sweep_id TEXT REFERENCES sweeps (id) ON DELETE CASCADE",
        "ALTER TABLE jobs ADD COLUMN trial INTEGER",
        "ALTER TABLE jobs ADD COLUMN params TEXT",
        "ALTER TABLE jobs ADD COLUMN objective DOUBLE PRECISION",
        "ALTER TABLE jobs ADD COLUMN pruned_at INTEGER",
        "CREATE INDEX jobs_sweep_trial ON jobs (sweep_id, trial)",
        """CREATE TABLE sweep_decisions (
            seq BIGSERIAL PRIMARY KEY,
            sweep_id TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            epoch INTEGER NOT NULL,
            value DOUBLE PRECISION,
            keep BOOLEAN NOT NULL,
            UNIQUE (job_id, epoch))""",
        "CREATE INDEX sweep_decisions_rung ON sweep_decisions (sweep_id, epoch)",
        "CREATE INDEX sweeps_tenant_seq ON sweeps (tenant, seq)",
    ],
    [  # 5: the fair claim enumerates (priority, tenant) pairs of queued jobs by a skip scan
        "CREATE INDEX jobs_queued_groups ON jobs (priority, tenant) WHERE status = 'queued'",
    ],
    [  # 6: job names and tags (from the spec), so GET /v1/jobs can filter on them with an index
        "ALTER TABLE jobs ADD COLUMN name TEXT",
        "CREATE INDEX jobs_name ON jobs (name)",
        """CREATE TABLE job_tags (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (job_id, key))""",
        "CREATE INDEX job_tags_key_value ON job_tags (key, value)",
    ],
    [  # 7: NOTIFY `needle_events:<schema>` with the job id when a job's status, progress,
       # attempt or cancel flag changes or a metric point is added, whichever process writes it,
       # so the API's event streams are woken instead of polling (lease renewals do not notify).
       # A transaction's identical notifications are delivered once.
        """CREATE FUNCTION needle_notify_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               PERFORM pg_notify('needle_events:' || TG_TABLE_SCHEMA, NEW.id);
               RETURN NULL;
           END $$""",
        """CREATE FUNCTION needle_notify_metric_event() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
               PERFORM pg_notify('needle_events:' || TG_TABLE_SCHEMA, NEW.job_id);
               RETURN NULL;
           END $$""",
        """CREATE TRIGGER jobs_notify_event AFTER UPDATE ON jobs FOR EACH ROW
           WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.step IS DISTINCT FROM NEW.step
                 OR OLD.epoch IS DISTINCT FROM NEW.epoch OR OLD.steps IS DISTINCT FROM NEW.steps
                 OR OLD.epochs IS DISTINCT FROM NEW.epochs OR OLD.attempt IS DISTINCT FROM NEW.attempt
                 OR OLD.cancel_requested IS DISTINCT FROM NEW.cancel_requested)
           EXECUTE FUNCTION needle_notify_job_event()""",
        """CREATE TRIGGER metrics_notify_event AFTER INSERT ON metrics FOR EACH ROW
           EXECUTE FUNCTION needle_notify_metric_event()""",
    ],
]


def apply_migrations(conn: psycopg.Connection) -> None:
    """Bring the schema to the latest version in one transaction, under a per-schema advisory lock
    (several processes may start at once)."""
    with conn.transaction():
        # Per-schema key, so tests using one schema each do not serialise on each other.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('needle-service:migrate:' "
                     "|| COALESCE(current_schema(), '')))")
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        for version, statements in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))


def applied_version(conn: psycopg.Connection) -> int:
    """The applied schema version (0 before the first migration)."""
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
