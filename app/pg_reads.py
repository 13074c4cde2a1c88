"""Lean reads on PostgreSQL: SQLAlchemy Core statements run straight on psycopg's asyncio API.

The API's hot read routes (mask and image bytes, COCO RLE, list pages) run one to three
small statements per request. Through SQLAlchemy each cost about 0.2 ms of CPU more than the
query itself (pool, events, execution context, result objects), and as a sync call it also
needed a worker-thread hand-off each way (a futex wake-up and a GIL round trip). Here the
statements are the same Core objects the services build, compiled once per statement
object, and run on a small per-process pool of autocommit `psycopg.AsyncConnection`s
awaited on the event loop: one statement is its own snapshot, so no BEGIN/COMMIT.

Rows are named tuples with the statement's column labels, like SQLAlchemy rows for the
columns used here. Session time zone is UTC, so timestamps come back as UTC like the
tables' UTCDateTime columns.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.sql import Executable

from app.db import PING_AFTER_IDLE_S

_DIALECT = PGDialect_psycopg()  # what the engine uses: the same SQL text and casts


class PgReader:
    """A pool of at most `size` autocommit connections, opened on first use."""

    def __init__(self, url: str, size: int) -> None:
        self.conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self.size = size
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []
        self._slots: asyncio.Semaphore | None = None
        # statement object -> (SQL text, every bind's default value)
        self._compiled: weakref.WeakKeyDictionary[Executable, tuple[str, dict[str, Any]]] = (
            weakref.WeakKeyDictionary()
        )

    def _sql(self, stmt: Executable) -> tuple[str, dict[str, Any]]:
        hit = self._compiled.get(stmt)
        if hit is None:
            compiled = stmt.compile(dialect=_DIALECT)
            defaults = {name: bp.effective_value for bp, name in compiled.bind_names.items()}
            hit = (compiled.string, defaults)
            self._compiled[stmt] = hit
        return hit

    async def rows(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> list[Any]:
        """All rows of `stmt` with `params` (named bind parameters) as named tuples."""
        sql, defaults = self._sql(stmt)
        values = {**defaults, **params} if params else defaults
        async with self._connection() as conn:
            cur = conn.cursor(row_factory=namedtuple_row)
            await cur.execute(sql, values)
            return await cur.fetchall()

    async def first(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.rows(stmt, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            conn = await self._checkout()
            try:
                yield conn
            except BaseException:
                # A failed or cancelled (client gone) statement may leave the connection
                # mid-query: never hand it to the next request.
                await conn.close()
                raise
            if conn.closed or conn.broken:
                await conn.close()
            else:
                self._idle.append((conn, time.monotonic()))

    async def _checkout(self) -> psycopg.AsyncConnection[Any]:
        while self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since < PING_AFTER_IDLE_S:
                return conn
            try:  # idle a while: a restarted server or a dropped socket shows here
                await conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                await conn.close()
        return await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, options="-c TimeZone=UTC"
        )

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()
