"""API tests run on PostgreSQL and once more on SQLite (the embedded default)."""

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from app.db import make_engine
from app.tables import Base


def empty_tables(url: str) -> None:
    """Delete every row and restart the ids.

    The same end state as tests.fixtures.db.truncate_all, but DELETE on these few-row tables
    takes milliseconds where PostgreSQL's TRUNCATE takes ~0.3 s; the API suite runs hundreds
    of tests, so this keeps it fast.
    """
    engine = make_engine(url, pool_size=1)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as c:
        for t in tables:
            c.execute(text(f'DELETE FROM "{t}"'))
        if url.startswith("sqlite"):
            has_seq = c.execute(
                text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
            ).first()
            if has_seq:
                c.execute(text("DELETE FROM sqlite_sequence"))
        else:
            for t in Base.metadata.sorted_tables:
                if "id" in t.c:
                    c.execute(
                        text("SELECT setval(pg_get_serial_sequence(:t, 'id'), 1, false)"),
                        {"t": t.name},
                    )
    engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    yield url
    empty_tables(url)
