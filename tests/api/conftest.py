"""API tests run on PostgreSQL and once more on SQLite (the embedded default)."""

import pytest


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    from tests.fixtures.db import truncate_all

    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    yield url
    truncate_all(url)
