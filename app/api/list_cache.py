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
Likewise, requests for a page that has to be rendered (none held, or the project changed)
share one render per batch (CoalescedReads): while a project keeps changing, 64 clients
polling four pages cost a few renders at a time, not one each.

The version also makes the page's ETag: a client sending it back in If-None-Match gets a
304 without the body.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter

from app.lru import LruCache
from app.pg_reads import PgReader
from app.services.image_list import LIST_VERSION


@dataclass(frozen=True)
class HeldPage:
    """A rendered page, the list version it was rendered at, and whether that render
    replaced an older version of it (the project is changing: see ``changing``)."""

    version: str
    body: bytes
    changing: bool


class ListPageCache:
    """Page bodies by page key (project, filter, cursor, limit), each with its version.

    A page whose last render replaced an older version is ``changing``: its next request
    goes straight to the render, which returns the version too, instead of reading the
    version first and then rendering (two round trips where a project changes many times
    a second). A render that finds the version it held clears the flag, so a project that
    went quiet costs one extra render per page before version reads serve it again.
    """

    def __init__(self, max_bytes: int, registry: CollectorRegistry) -> None:
        self._pages = LruCache[HeldPage](
            max_bytes, cost=lambda v: len(v.body) + 200, max_item_cost=max(max_bytes // 8, 1)
        )
        self._lookups = Counter(
            "tag2mask_list_page_cache_lookups",
            "List page requests by what the page cache held: a page at the current "
            "version (hit; rerendered when a changing page was rendered and found "
            "unchanged), an older one (stale) or none (miss)",
            ["result"],
            registry=registry,
        )
        self._renders = Counter(
            "tag2mask_list_page_renders",
            "List pages rendered by PostgreSQL (the requests waiting for a page at once "
            "share one render)",
            registry=registry,
        )

    def rendered(self) -> None:
        """Record one render of a page."""
        self._renders.inc()

    def get(self, key: Hashable) -> HeldPage | None:
        """The stored page of `key`, if any."""
        return self._pages.get(key)

    def count(self, result: str) -> None:
        """Record what a request found: "hit", "rerendered", "stale" or "miss"."""
        self._lookups.labels(result).inc()

    def store(self, key: Hashable, version: str, body: bytes, held: HeldPage | None) -> str:
        """Keep a fresh render of `key` (``held``: what was kept before); returns what the
        request found, for :meth:`count`."""
        changed = held is not None and held.version != version
        self._pages.put(key, HeldPage(version, body, changing=changed))
        if held is None:
            return "miss"
        return "stale" if changed else "rerendered"


def page_etag(key: Hashable, version: str) -> str:
    """A strong ETag: the project's list version and a digest of the page's key."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
    return f'"{version}.{digest}"'


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class _Batch(Generic[V]):
    read: Callable[[], Awaitable[V]]
    waiters: list[asyncio.Future[V]] = field(default_factory=list)
    running: bool = False


class CoalescedReads(Generic[K, V]):
    """Concurrent reads of one key, coalesced.

    A request joins the batch that waits for the next read of its key; a read is sent only
    after every request of its batch arrived, so its snapshot is at least as new as each
    of them (a client that saw its write acknowledged never gets an older answer).
    Requests arriving while a read is out wait for the following one. Every read of a key
    must give the same answer from the same snapshot: any waiter's ``read`` serves all.
    """

    def __init__(self) -> None:
        self._batches: dict[K, _Batch[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        """``read()``'s answer, from a read shared with the requests waiting for ``key``."""
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(read)
        waiter: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        batch.waiters.append(waiter)
        if not batch.running:
            batch.running = True
            # The task holds the read: a waiter that is cancelled leaves the others served.
            asyncio.get_running_loop().create_task(self._serve(key, batch))
        return await waiter

    async def _serve(self, key: K, batch: _Batch[V]) -> None:
        try:
            while batch.waiters:
                waiting, batch.waiters = batch.waiters, []
                try:
                    value = await batch.read()
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
                        w.set_result(value)
        finally:
            batch.running = False
            if not batch.waiters:
                self._batches.pop(key, None)


class VersionReads(CoalescedReads[int, "str | None"]):
    """Concurrent reads of one project's list version, coalesced (see CoalescedReads)."""

    def __init__(self, read: Callable[[int], Awaitable[str | None]]) -> None:
        super().__init__()
        self._read_version = read

    async def version(self, project_id: int) -> str | None:
        """The project's list version, or None if there is no such project."""
        return await self.get(project_id, partial(self._read_version, project_id))


async def read_list_version(reader: PgReader | None, project_id: int) -> str | None:
    """The project's list version from PostgreSQL (None: no such project)."""
    if reader is None:
        raise RuntimeError("list versions are kept by PostgreSQL only")
    row = await reader.first(LIST_VERSION, {"project_id": project_id})
    return None if row is None else row.list_version
