"""Service configuration from the environment (prefix TAG2MASK_), validated on load."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the API, the workers and the CLI read from the environment.

    The defaults give the embedded mode: a SQLite file and blobs under ./tag2mask-data,
    jobs on an in-process thread.
    """

    model_config = SettingsConfigDict(env_prefix="TAG2MASK_", env_file=None, extra="ignore")

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data dir"
    )
    redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path("./tag2mask-data")
    job_runner: Literal["thread", "celery"] = "thread"
    max_upload_bytes: int = Field(default=50_000_000, gt=0)
    max_image_pixels: int = Field(default=50_000_000, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    job_queue: str = "gpu"
    job_heartbeat_s: float = Field(default=5.0, gt=0)
    job_stale_after_s: float = Field(default=120.0, gt=0)
    job_queued_timeout_s: float = Field(default=300.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    # Hand-backs (see Job.handbacks) allowed on top, so that a job that keeps losing its
    # database connection by itself still ends.
    job_max_handbacks: int = Field(default=20, ge=0)
    reaper_interval_s: float = Field(default=30.0, gt=0)
    db_pool_size: int = Field(default=10, ge=1)
    # One per process: lean reads are short index lookups, and every extra backend on the
    # same cores only lengthens the tail (bench/load.py, 2 cores, 64 clients: list page p99
    # 64 ms with 1, 105 ms with 2, 127 ms with 4). Raise it where PostgreSQL has its own cores.
    db_read_pool_size: int = Field(
        default=1, ge=1, description="connections per API process for lean reads (PostgreSQL)"
    )
    db_write_pool_size: int = Field(
        default=2,
        ge=1,
        description="connections per API process for single-statement uploads (PostgreSQL); "
        "each mostly waits for its commit's WAL flush",
    )
    blob_cache_mb: int = Field(
        default=64, ge=0, description="MiB per API process of small blobs kept in memory"
    )
    list_cache_mb: int = Field(
        default=16,
        ge=0,
        description="MiB per API process of rendered list pages, served while their project "
        "is unchanged (PostgreSQL); 0: off",
    )
    api_threads: int = Field(default=8, ge=1, description="threads per API process for sync routes")
    webhook_allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="JSON list of CIDRs webhooks may reach although they are not public "
        '(on-premise receivers, e.g. ["10.20.0.0/16"]); everything else internal is refused',
    )
    auth_cache_ttl_s: float = Field(
        default=10.0, ge=0, description="seconds a checked key is trusted without a query; 0: off"
    )

    public_url: str | None = Field(
        default=None,
        description="the address browsers and other servers reach this API at "
        "(e.g. https://tag2mask.example.org); exports write absolute signed URLs under it",
    )
    url_signing_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret of signed image/mask URLs; default: a random one kept in "
        "<data dir>/url-signing.key (set it when API and workers do not share the data dir)",
    )
    signed_url_ttl_s: int = Field(
        default=7 * 24 * 3600,
        gt=0,
        description="seconds a signed URL stays valid (exports: counted from the export)",
    )
    label_studio_url: str | None = Field(
        default=None,
        description="Label Studio's address, to fetch task images it hosts when its ML "
        "backend /setup did not say (e.g. http://localhost:8080)",
    )
    label_studio_token: SecretStr | None = Field(
        default=None, description="a Label Studio access token for those fetches"
    )
    label_studio_fetch_timeout_s: float = Field(
        default=10.0, gt=0, description="timeout of one image fetch from a task URL"
    )

    @field_validator("public_url", "label_studio_url")
    @classmethod
    def _strip_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url else None

    @field_validator("database_url")
    @classmethod
    def _normalise_driver(cls, url: str | None) -> str | None:
        """Use psycopg 3 for PostgreSQL whatever spelling the user gave."""
        if url is None:
            return None
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'tag2mask.db'}"
        return self

    @property
    def db_url(self) -> str:
        """The resolved database URL (never None after validation)."""
        assert self.database_url is not None
        return self.database_url

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    def ensure_dirs(self) -> None:
        """Create the data and blob directories (called at start-up, not at import)."""
        self.blob_dir.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    """Settings from the process environment, built once."""
    return Settings()
