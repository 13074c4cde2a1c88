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


class _StaleConnection(Exception):
    """A connection taken from the pool turned out dead before its statement ran."""


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
        try:
            return await self._run(sql, values, reuse=True)
        except _StaleConnection:
            # A pooled connection the server dropped (a database restart): the statement
            # never ran to a result, so it runs once more on a new connection. Safe for
            # every statement run here: reads, and uploads' INSERT ... ON CONFLICT DO
            # NOTHING (a first try that did commit makes the second a conflict, a merge).
            return await self._run(sql, values, reuse=False)

    async def _run(self, sql: str, values: Mapping[str, Any], *, reuse: bool) -> list[Any]:
        async with self._connection(reuse=reuse) as (conn, reused):
            cur = conn.cursor(row_factory=namedtuple_row)
            try:
                await cur.execute(sql, values)
            except psycopg.OperationalError as e:
                if reused and conn.broken:
                    raise _StaleConnection from e
                raise
            return await cur.fetchall()

    async def first(self, stmt: Executable, params: Mapping[str, Any] | None = None) -> Any:
        rows = await self.rows(stmt, params)
        return rows[0] if rows else None

    @asynccontextmanager
    async def _connection(
        self, *, reuse: bool = True
    ) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], bool]]:
        """(connection, whether it came from the pool) for one statement."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            conn, reused = await self._checkout(reuse)
            try:
                yield conn, reused
            except BaseException:
                # A failed or cancelled (client gone) statement may leave the connection
                # mid-query: never hand it to the next request.
                await conn.close()
                raise
            if conn.closed or conn.broken:
                await conn.close()
            else:
                self._idle.append((conn, time.monotonic()))

    async def _checkout(self, reuse: bool = True) -> tuple[psycopg.AsyncConnection[Any], bool]:
        while reuse and self._idle:
            conn, since = self._idle.pop()
            if time.monotonic() - since < PING_AFTER_IDLE_S:
                return conn, True
            try:  # idle a while: a restarted server or a dropped socket shows here
                await conn.execute("SELECT 1")
                return conn, True
            except psycopg.Error:
                await conn.close()
        conn = await psycopg.AsyncConnection.connect(
            self.conninfo, autocommit=True, options="-c TimeZone=UTC"
        )
        return conn, False

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()
