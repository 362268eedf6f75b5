"""All configuration in one place; every field is also an environment variable (NEEDLE_<NAME>)."""
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration: CLI flags override environment variables, which override defaults."""

    model_config = SettingsConfigDict(env_prefix="NEEDLE_", extra="ignore")

    # --- server ---
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./data")
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=0,
                         description="Local worker processes started by `serve` (0 = API only).")
    database_url: str | None = Field(
        default=None,
        description="postgresql://... for PostgreSQL; unset means SQLite at <data_dir>/jobs.db.")
    mnist_dir: Path | None = Field(default=None, description="Directory holding the MNIST IDX files.")

    # --- authentication (see README "Security") ---
    auth: Literal["auto", "required", "off"] = Field(
        default="auto", description="auto: required when `host` is not a loopback address.")
    public_readyz: bool = True            # /readyz without a key (probes); False: key needed
    public_docs: bool = True              # /docs, /redoc, /openapi.json without a key
    public_metrics: bool = False          # /metrics without a key
    admin_key: SecretStr | None = Field(
        default=None, description="An admin API key (at least 32 characters) `serve` makes sure "
        "exists (as `env-admin-<hash prefix>`), e.g. from a container's environment.")
    auth_cache_seconds: float = Field(default=5.0, ge=0, description="How long an API process "
                                      "trusts a key lookup (a revocation takes this long to bite).")

    # --- submission caps ---
    max_parameters: int = 5_000_000
    max_epochs: int = 1000
    max_inline_rows: int = 20_000
    max_body_bytes: int = 16 * 1024 * 1024     # JSON bodies (specs, inline data, JSON datasets)
    max_upload_bytes: int = 256 * 1024 * 1024  # multipart .npz uploads (and their inflated size)
    max_modules: int = 5_000                   # layers and containers of one model

    # --- cost bounds (decided at submission) ---
    max_job_flops: float = 1e14                # estimated total FLOPs of one job
    max_job_steps: int = 10_000_000            # optimizer steps of one job
    default_max_runtime_s: float = 3600.0      # given to every job that sets no max_runtime_s
    max_runtime_s: float = 86_400.0            # the largest max_runtime_s a job may ask for
    worker_memory_bytes: int = 2 * 1024**3     # activation budget of one worker (train + eval)
    max_step_points: int = 10_000              # step metric points per job (then aggregated)

    # --- inference in the API (/predict, /evaluate) ---
    predict_memory_bytes: int = Field(default=256 * 1024**2, gt=0, description=(
        "Inference budget of one /predict or /evaluate: rows per forward pass are sized to it "
        "and the answer must fit it."))
    predict_concurrency: int = Field(default=2, ge=1, description=(
        "/predict and /evaluate requests computed at once per API process (others wait)."))
    model_cache_models: int = Field(default=16, ge=0, description=(
        "Built models an API process keeps (LRU by job; 0 = build per request)."))
    model_cache_bytes: int = Field(default=512 * 1024**2, ge=0, description=(
        "Total parameter bytes of the models an API process keeps."))


    # --- connections (uvicorn) ---
    timeout_keep_alive_s: float = 5.0          # idle keep-alive connections are closed after this
    timeout_header_s: float = 10.0             # request line + headers must arrive within this
    timeout_body_s: float = 30.0               # longest pause while a request body is sent
    limit_concurrency: int = 200               # connections + tasks at once; beyond: 503
    test_slow_preparation_s: float = 0.0       # TESTS ONLY: sleep this long in data preparation

    # --- event streams ---
    events_poll_seconds: float = Field(default=0.05, gt=0, description=(
        "How often the API looks for changes of followed jobs (SQLite; PostgreSQL pushes)."))
    events_push_poll_seconds: float = Field(default=2.0, gt=0, description=(
        "Safety-net poll while PostgreSQL pushes changes."))
    events_keepalive_seconds: float = Field(default=15.0, gt=0, description=(
        "A keep-alive comment after this long without events."))

    # --- workers ---
    lease_seconds: float = 15.0          # a running job's lease; renewed every heartbeat
    heartbeat_seconds: float = 2.0
    max_attempts: int = 3                 # then the job fails with the reason
    checkpoint_interval_s: float = 10.0   # seconds of training between checkpoints (per-job
                                          # override: training.checkpoint_interval_s)
    poll_seconds: float = 0.05            # idle worker's poll interval
    worker_nice: int = 10                 # workers train below the API's priority
    worker_threads: int = 1               # BLAS and needle threads per worker

    def sqlite_path(self) -> Path:
        """The embedded database file."""
        return self.data_dir / "jobs.db"
