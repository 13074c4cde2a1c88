"""Settings: embedded-mode defaults, the TAG2MASK_ environment prefix, validation."""

import os

import pytest
from pydantic import ValidationError

from app.settings import Settings


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No TAG2MASK_ variables, and a temp working directory (the default data dir is ./)."""
    for name in list(os.environ):
        if name.startswith("TAG2MASK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


class TestDefaults:
    def test_embedded_mode(self, clean_env, tmp_path):
        s = Settings()
        data = (tmp_path / "tag2mask-data").resolve()
        assert s.data_dir == data and s.data_dir.is_absolute()
        assert s.database_url == f"sqlite:///{data / 'tag2mask.db'}"
        assert s.db_url == s.database_url and s.is_sqlite
        assert s.job_runner == "thread"
        assert s.blob_dir == data / "blobs"
        assert s.redis_url == "redis://127.0.0.1:6379/0"
        assert s.max_upload_bytes == 50_000_000 and s.max_image_pixels == 50_000_000

    def test_nothing_created_until_asked(self, clean_env, tmp_path):
        s = Settings()
        assert not s.data_dir.exists()
        s.ensure_dirs()
        assert s.blob_dir.is_dir()

    def test_sqlite_follows_data_dir(self, clean_env, tmp_path):
        s = Settings(data_dir=tmp_path / "elsewhere")
        assert s.db_url == f"sqlite:///{(tmp_path / 'elsewhere').resolve() / 'tag2mask.db'}"

    def test_home_is_expanded(self, clean_env, tmp_path):
        clean_env.setenv("HOME", str(tmp_path))
        assert Settings(data_dir="~/d").data_dir == (tmp_path / "d").resolve()


class TestEnvironment:
    def test_prefix(self, clean_env, tmp_path):
        clean_env.setenv("TAG2MASK_MAX_UPLOAD_BYTES", "1234")
        clean_env.setenv("TAG2MASK_MAX_IMAGE_PIXELS", "99")
        clean_env.setenv("TAG2MASK_JOB_RUNNER", "celery")
        clean_env.setenv("TAG2MASK_DATA_DIR", str(tmp_path / "dd"))
        clean_env.setenv("TAG2MASK_REDIS_URL", "redis://example:6380/2")
        s = Settings()
        assert s.max_upload_bytes == 1234 and s.max_image_pixels == 99
        assert s.job_runner == "celery" and s.data_dir == (tmp_path / "dd").resolve()
        assert s.redis_url == "redis://example:6380/2"

    def test_unprefixed_names_are_ignored(self, clean_env):
        clean_env.setenv("MAX_UPLOAD_BYTES", "5")
        clean_env.setenv("DATABASE_URL", "postgresql://x@y/z")
        s = Settings()
        assert s.max_upload_bytes == 50_000_000 and s.is_sqlite

    def test_database_url_from_env(self, clean_env):
        clean_env.setenv("TAG2MASK_DATABASE_URL", "postgresql+psycopg://u:p@h:5432/db")
        s = Settings()
        assert s.db_url == "postgresql+psycopg://u:p@h:5432/db" and not s.is_sqlite


class TestValidation:
    @pytest.mark.parametrize(
        "given",
        [
            "postgres://u:p@h:5432/db",
            "postgresql://u:p@h:5432/db",
            "postgresql+psycopg2://u:p@h:5432/db",
        ],
    )
    def test_postgres_urls_use_psycopg3(self, clean_env, given):
        assert Settings(database_url=given).db_url == "postgresql+psycopg://u:p@h:5432/db"

    def test_postgres_url_from_env_is_normalised(self, clean_env):
        clean_env.setenv("TAG2MASK_DATABASE_URL", "postgres://u@h/db")
        assert Settings().db_url == "postgresql+psycopg://u@h/db"

    def test_other_urls_unchanged(self, clean_env):
        for url in ("sqlite:////tmp/x.db", "postgresql+psycopg://u@h/db"):
            assert Settings(database_url=url).db_url == url

    def test_invalid_job_runner(self, clean_env):
        with pytest.raises(ValidationError) as e:
            Settings(job_runner="processes")
        assert "job_runner" in str(e.value)

    def test_invalid_job_runner_from_env(self, clean_env):
        clean_env.setenv("TAG2MASK_JOB_RUNNER", "nope")
        with pytest.raises(ValidationError):
            Settings()

    @pytest.mark.parametrize("field", ["max_upload_bytes", "max_image_pixels"])
    @pytest.mark.parametrize("value", [0, -1])
    def test_limits_must_be_positive(self, clean_env, field, value):
        with pytest.raises(ValidationError):
            Settings(**{field: value})

    def test_non_integer_limit_from_env(self, clean_env):
        clean_env.setenv("TAG2MASK_MAX_UPLOAD_BYTES", "lots")
        with pytest.raises(ValidationError):
            Settings()
