"""Rendered list pages, kept per API process and served while their project is unchanged.

A labeling frontend polls the same few pages of a project (the first page, a filter, the
page being reviewed) far more often than the project changes. On PostgreSQL every change
that can alter a page bumps the project's list version in the same transaction
(app/tables/list_version.py), and a page is rendered in the same snapshot as the version
it is stored under, so a stored page is served only after a one-row query finds the
version unchanged: never stale, from any writer (other API processes, job workers, psql),
and still one round trip, but an index lookup instead of the page's joins and rendering.

Under load, many requests for one project wait for its version at once: they share one
read (VersionReads), so the lookup costs the database one query per batch, not per request.

The version also makes the page's ETag: a client sending it back in If-None-Match gets a
304 without the body.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter

from app.lru import LruCache
from app.pg_reads import PgReader
from app.services.image_list import LIST_VERSION


class ListPageCache:
    """Page bodies by page key (project, filter, cursor, limit), each with its version."""

    def __init__(self, max_bytes: int, registry: CollectorRegistry) -> None:
        self._pages = LruCache[tuple[str, bytes]](
            max_bytes, cost=lambda v: len(v[1]) + 200, max_item_cost=max(max_bytes // 8, 1)
        )
        self._lookups = Counter(
            "tag2mask_list_page_cache_lookups",
            "List page requests by what the page cache held: a page at the current "
            "version (hit), an older one (stale) or none (miss)",
            ["result"],
            registry=registry,
        )

    def get(self, key: Hashable) -> tuple[str, bytes] | None:
        """The stored (version, body) of `key`, if any."""
        return self._pages.get(key)

    def count(self, result: str) -> None:
        """Record what a request found: "hit", "stale" or "miss"."""
        self._lookups.labels(result).inc()

    def store(self, key: Hashable, version: str, body: bytes) -> None:
        self._pages.put(key, (version, body))


def page_etag(key: Hashable, version: str) -> str:
    """A strong ETag: the project's list version and a digest of the page's key."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
    return f'"{version}.{digest}"'


@dataclass
class _Batch:
    waiters: list[asyncio.Future[str | None]] = field(default_factory=list)
    running: bool = False


class VersionReads:
    """Concurrent reads of one project's list version, coalesced.

    A request joins the batch that waits for the next read; a read is sent only after
    every request of its batch arrived, so its snapshot is at least as new as each of
    them (a client that saw its write acknowledged never gets an older version). Requests
    arriving while a read is out wait for the following one.
    """

    def __init__(self, read: Callable[[int], Awaitable[str | None]]) -> None:
        self._read = read
        self._batches: dict[int, _Batch] = {}

    async def version(self, project_id: int) -> str | None:
        """The project's list version, or None if there is no such project."""
        batch = self._batches.get(project_id)
        if batch is None:
            batch = self._batches[project_id] = _Batch()
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        if not batch.running:
            batch.running = True
            # The task holds the read: a waiter that is cancelled leaves the others served.
            asyncio.get_running_loop().create_task(self._serve(project_id, batch))
        return await waiter

    async def _serve(self, project_id: int, batch: _Batch) -> None:
        try:
            while batch.waiters:
                waiting, batch.waiters = batch.waiters, []
                try:
                    version = await self._read(project_id)
                except asyncio.CancelledError:  # shutting down: nobody is left waiting
                    for w in (*waiting, *batch.waiters):
                        w.cancel()
                    raise
                except Exception as e:  # each waiter's request fails with the read's error
                    for w in waiting:
                        if not w.done():
                            w.set_exception(e)
                    continue
                for w in waiting:
                    if not w.done():
                        w.set_result(version)
        finally:
            batch.running = False
            if not batch.waiters:
                self._batches.pop(project_id, None)


async def read_list_version(reader: PgReader | None, project_id: int) -> str | None:
    """The project's list version from PostgreSQL (None: no such project)."""
    if reader is None:
        raise RuntimeError("list versions are kept by PostgreSQL only")
    row = await reader.first(LIST_VERSION, {"project_id": project_id})
    return None if row is None else row.list_version
