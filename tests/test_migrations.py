"""Alembic: `upgrade head` on empty PostgreSQL and SQLite databases gives exactly the schema
of app.tables (autogenerate finds no difference); /readyz follows the schema state."""

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.db import make_engine
from app.migrate import head_revision, schema_is_current, upgrade_head
from app.tables import Base
from tests.fixtures.db import PG_ADMIN_URL, _pg_available


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A brand-new, empty PostgreSQL database; dropped after the test."""
    reason = _pg_available()
    if reason:
        pytest.skip(reason)
    name = f"tag2mask_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_sqlite(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(params=["postgres", "sqlite"])
def empty_db(request) -> str:
    return request.getfixturevalue("empty_pg" if request.param == "postgres" else "empty_sqlite")


def schema_diff(url: str) -> list:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url, pool_size=1)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


class TestUpgrade:
    def test_upgrade_creates_every_table_at_head(self, empty_db):
        assert table_names(empty_db) == set()
        upgrade_head(empty_db)
        assert table_names(empty_db) == set(Base.metadata.tables) | {"alembic_version"}
        engine = make_engine(empty_db, pool_size=1)
        try:
            assert schema_is_current(engine)
            with engine.connect() as c:
                rev = c.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            assert rev == head_revision(empty_db)
        finally:
            engine.dispose()

    def test_autogenerate_finds_no_difference(self, empty_db):
        upgrade_head(empty_db)
        assert schema_diff(empty_db) == []

    def test_upgrade_twice_is_a_no_op(self, empty_sqlite):
        upgrade_head(empty_sqlite)
        upgrade_head(empty_sqlite)
        assert schema_diff(empty_sqlite) == []

    def test_unmigrated_database_differs(self, empty_sqlite):
        """The comparison above is not vacuous: an empty database shows every table missing."""
        diff = schema_diff(empty_sqlite)
        added = {d[1].name for d in diff if d[0] == "add_table"}
        assert added == set(Base.metadata.tables)


class TestReadiness:
    """The readiness route itself, on an app whose start-up touches no table (Celery runner:
    it only connects to the broker when a job is sent)."""

    def test_not_ready_before_migration(self, make_client, empty_db):
        client = make_client(database_url=empty_db, job_runner="celery")
        r = client.get("/readyz")
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "not_ready" and "migration" in err["message"]
        assert client.get("/healthz").status_code == 200  # alive, just not ready

    def test_ready_after_migration(self, make_client, empty_db):
        upgrade_head(empty_db)
        r = make_client(database_url=empty_db, job_runner="celery").get("/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready"}

    def test_ready_on_the_test_database(self, client):
        assert client.get("/readyz").json() == {"status": "ready"}

    def test_not_ready_when_database_is_unreachable(self, make_client, tmp_path):
        url = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"
        r = make_client(database_url=url, job_runner="celery").get("/readyz")
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "not_ready" and "does not answer" in err["message"]

    def test_embedded_runner_starts_and_reports_not_ready(self, make_client, empty_sqlite):
        r = make_client(database_url=empty_sqlite, job_runner="thread").get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
