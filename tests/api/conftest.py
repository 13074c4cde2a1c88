"""API tests run on PostgreSQL and once more on SQLite (the embedded default)."""

from collections.abc import Iterator

import pytest

from tests.fixtures.db import truncate_all


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    yield url
    truncate_all(url)
