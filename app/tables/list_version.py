"""Change counters of a project's listing, kept by PostgreSQL triggers (migration 0004).

Every statement that inserts, updates or deletes a project's images, image tags, masks or
categories adds 1 to one of the project's counters, in the same transaction. The sum of a
project's counters therefore grows with every committed change that can alter a list
page, and a page rendered in the same snapshot as that sum stays exact for as long as the
sum is unchanged (app/api/list_cache.py).

A writer bumps the counter of its own shard (its backend pid modulo SHARDS), so concurrent
uploads to one project do not queue on one row lock until each other's commits.
SQLite has no such triggers; its rows stay empty and the API does not cache its pages.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from app.tables.base import Base

SHARDS = 16


class ListVersion(Base):
    __tablename__ = "list_versions"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)
