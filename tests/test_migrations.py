"""Alembic: `upgrade head` on empty PostgreSQL and SQLite databases gives exactly the schema
of app.tables (autogenerate finds no difference); /readyz follows the schema state."""

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app.db import make_engine
from app.migrate import alembic_config, head_revision, schema_is_current, upgrade_head
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


# --- 0005: webhook rows kept, stored receiver answers replaced by their category, and (SQLite)
# --- ids never handed out again

NOW = "2026-01-01 00:00:00.000000"


def _seed_at_0004(url: str) -> None:
    command.upgrade(alembic_config(url), "0004")
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO projects (id, name, settings, created_at, updated_at) "
                    "VALUES (1, 'p', '{}', :t, :t)"
                ),
                {"t": NOW},
            )
            for _ in (1, 2):  # ids 1 and 2
                c.execute(
                    text(
                        "INSERT INTO webhooks (project_id, url, secret, events, active, "
                        "created_at) VALUES (1, 'https://r.example/', 's', '[]', true, :t)"
                    ),
                    {"t": NOW},
                )
            rows = [
                (1, 1, 500, "HTTP 500: secret=hunter2"),
                (2, 1, None, "ConnectError: [Errno 111] Connection refused"),
                (3, 2, None, "gave up: the last attempt never ended"),
                (4, 2, 200, None),
            ]
            for _id, hook_id, code, error in rows:  # ids 1..4, in this order
                c.execute(
                    text(
                        "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, "
                        "attempts, last_status_code, last_error, next_attempt_at, created_at) "
                        "VALUES (:w, 'job.finished', '{}', 'pending', 1, :code, :err, "
                        ":t, :t)"
                    ),
                    {"w": hook_id, "code": code, "err": error, "t": NOW},
                )
    finally:
        engine.dispose()


def test_0005_keeps_rows_scrubs_answers_and_stops_id_reuse(empty_db):
    _seed_at_0004(empty_db)
    upgrade_head(empty_db)
    engine = make_engine(empty_db, pool_size=1)
    try:
        with engine.begin() as c:
            errors = c.execute(
                text("SELECT id, webhook_id, last_error FROM webhook_deliveries ORDER BY id")
            ).all()
            assert [tuple(r) for r in errors] == [
                (1, 1, "http_status"),
                (2, 1, "unreachable"),
                (3, 2, "interrupted"),
                (4, 2, None),
            ]
            # the newest webhook goes, and its deliveries with it (the cascade still works)
            c.execute(text("DELETE FROM webhooks WHERE id = 2"))
            assert c.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar() == 2
            new_hook = c.execute(
                text(
                    "INSERT INTO webhooks (project_id, url, secret, events, active, created_at) "
                    "VALUES (1, 'https://r.example/', 's', '[]', true, :t) RETURNING id"
                ),
                {"t": NOW},
            ).scalar()
            new_delivery = c.execute(
                text(
                    "INSERT INTO webhook_deliveries (webhook_id, event, payload, status, "
                    "attempts, next_attempt_at, created_at) "
                    "VALUES (:w, 'job.finished', '{}', 'pending', 0, :t, :t) RETURNING id"
                ),
                {"w": new_hook, "t": NOW},
            ).scalar()
        assert new_hook == 3 and new_delivery == 5
    finally:
        engine.dispose()
