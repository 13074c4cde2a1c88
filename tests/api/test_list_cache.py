"""Cached list pages (PostgreSQL): served again only while the project's list version holds.

Every change below is made where the caching app cannot see it (another app, the way a
job's write-back stores masks, plain SQL), and the caching app's page must then equal the
page of an app that caches nothing.
"""

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text

from app.db import make_engine
from tests.fixtures.build import (
    add_pseudo_mask,
    image_bytes,
    make_project,
    stripes_mask,
    upload_ok,
)
from tests.fixtures.db import truncate_all

QUERIES = (
    "limit=2",
    "limit=2&cursor={cursor}",
    "tag=cat",
    "has_pseudo_mask=true",
    "review_state=accepted",
    "has_human_mask=false&limit=50",
)


@pytest.fixture
def db_url(pg_url: str) -> Iterator[str]:
    """PostgreSQL only: the list versions are kept by its triggers."""
    yield pg_url
    truncate_all(pg_url)


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as c:
            result = c.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def version_sum(url: str, project_id: int) -> int:
    rows = sql(url, "SELECT sum(version) FROM list_versions WHERE project_id = :p", p=project_id)
    return int(rows[0][0] or 0)


def lookups(client: Any, admin: dict[str, str]) -> dict[str, float]:
    """The page cache's counters from /metrics, by result."""
    out = {}
    for line in client.get("/metrics", headers=admin).text.splitlines():
        if line.startswith("tag2mask_list_page_cache_lookups_total{"):
            result = line.split('result="')[1].split('"')[0]
            out[result] = float(line.rsplit(" ", 1)[1])
    return out


class Pages:
    """Every page of QUERIES from one app, next to the same pages from an app without cache."""

    def __init__(self, cached: Any, truth: Any, headers: dict[str, str], project_id: int) -> None:
        self.cached, self.truth, self.headers, self.pid = cached, truth, headers, project_id

    def _get(self, client: Any, query: str) -> Any:
        r = client.get(f"/v1/projects/{self.pid}/images?{query}", headers=self.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def check(self) -> list[Any]:
        first = self._get(self.truth, "limit=2")
        seen = []
        for q in QUERIES:
            q = q.format(cursor=first["next_cursor"] or "")
            expected = self._get(self.truth, q)
            # Twice: the second answer comes from the cache when nothing changed.
            assert self._get(self.cached, q) == expected, q
            assert self._get(self.cached, q) == expected, q
            seen.append(expected)
        return seen


@pytest.fixture
def pages(make_client: Callable[..., Any], admin: dict[str, str]) -> Pages:
    cached = make_client()
    truth = make_client(list_cache_mb=0)
    project = make_project(cached, admin)
    return Pages(cached, truth, admin, project["id"])


def test_every_change_from_outside_shows_in_cached_pages(pages, make_client, admin, settings):
    other = make_client()  # another API process: the caching app's cache never hears of it
    pid = pages.pid
    ids = [
        upload_ok(other, admin, pid, image_bytes(seed=i), tags="cat" if i % 2 else "dog")["id"]
        for i in range(5)
    ]
    pages.check()
    before = lookups(pages.cached, admin)
    assert before.get("hit", 0) >= len(QUERIES)  # the second read of each page

    rename = "UPDATE images SET filename = 'renamed.png' WHERE id = :i"
    changes = [
        lambda: upload_ok(other, admin, pid, image_bytes(seed=9), tags="cat"),
        lambda: other.put(f"/v1/images/{ids[0]}/tags", json={"tags": ["cat"]}, headers=admin),
        lambda: add_pseudo_mask(settings, ids[1], stripes_mask(), review_state="pending"),
        lambda: sql(settings.db_url, "UPDATE masks SET review_state = 'accepted'"),
        lambda: sql(settings.db_url, rename, i=ids[2]),
        lambda: sql(settings.db_url, "UPDATE categories SET name = 'puppy' WHERE name = 'dog'"),
        lambda: other.delete(f"/v1/images/{ids[3]}", headers=admin),
    ]
    for change in changes:
        assert change() is not False
        pages.check()
    after = lookups(pages.cached, admin)
    assert after["stale"] >= len(changes)  # each change made some held page stale


def test_unchanged_project_is_answered_from_cache_and_by_etag(pages, admin, settings):
    pid = pages.pid
    upload_ok(pages.cached, admin, pid, image_bytes(seed=1), tags="cat")
    url = f"/v1/projects/{pid}/images?limit=10"
    first = pages.cached.get(url, headers=admin)
    etag = first.headers["etag"]
    hits = lookups(pages.cached, admin).get("hit", 0)
    again = pages.cached.get(url, headers=admin)
    assert again.content == first.content and again.headers["etag"] == etag
    assert lookups(pages.cached, admin)["hit"] == hits + 1

    assert pages.cached.get(url, headers={**admin, "If-None-Match": etag}).status_code == 304
    # Another query of the same project has its own ETag.
    other = pages.cached.get(f"/v1/projects/{pid}/images?limit=11", headers=admin)
    assert other.headers["etag"] != etag
    # The app without a cache gives the same ETag (it is the database's version) and 304s.
    assert pages.truth.get(url, headers={**admin, "If-None-Match": etag}).status_code == 304

    upload_ok(pages.truth, admin, pid, image_bytes(seed=2), tags="cat")
    changed = pages.cached.get(url, headers={**admin, "If-None-Match": etag})
    assert changed.status_code == 200 and len(changed.json()["items"]) == 2
    assert changed.headers["etag"] != etag


def test_deleted_project_is_not_served_from_cache(pages, admin, settings):
    upload_ok(pages.cached, admin, pages.pid, image_bytes(seed=1), tags="cat")
    pages.check()
    sql(settings.db_url, "DELETE FROM projects WHERE id = :p", p=pages.pid)
    r = pages.cached.get(f"/v1/projects/{pages.pid}/images?limit=2", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert sql(settings.db_url, "SELECT count(*) FROM list_versions")[0][0] == 0


def test_a_new_project_with_an_old_id_is_not_served_the_old_pages(pages, admin, settings):
    upload_ok(pages.cached, admin, pages.pid, image_bytes(seed=1), tags="cat")
    old = pages.cached.get(f"/v1/projects/{pages.pid}/images", headers=admin).json()
    assert len(old["items"]) == 1
    # Same id, same counters (both start from nothing): only the creation time differs.
    sql(settings.db_url, "DELETE FROM projects WHERE id = :p", p=pages.pid)
    sql(
        settings.db_url,
        "INSERT INTO projects (id, name, settings, created_at, updated_at) "
        "VALUES (:p, 'again', '{}', now(), now())",
        p=pages.pid,
    )
    r = pages.cached.get(f"/v1/projects/{pages.pid}/images", headers=admin)
    assert r.status_code == 200 and r.json()["items"] == []


class TestTriggers:
    def test_each_write_bumps_only_its_project(self, client, admin, settings):
        a = make_project(client, admin, name="a")["id"]
        b = make_project(client, admin, name="b")["id"]
        url = settings.db_url
        steps = [
            lambda: upload_ok(client, admin, a, image_bytes(seed=1), tags="cat"),
            lambda: client.put("/v1/images/1/tags", json={"tags": ["dog"]}, headers=admin),
            lambda: add_pseudo_mask(settings, 1, stripes_mask()),
            lambda: sql(url, "UPDATE masks SET review_state = 'rejected'"),
            lambda: sql(url, "DELETE FROM image_tags"),
            lambda: sql(url, "UPDATE categories SET color = '#000000' WHERE project_id = :p", p=a),
            lambda: client.delete("/v1/images/1", headers=admin),
        ]
        for step in steps:
            before_a, before_b = version_sum(url, a), version_sum(url, b)
            step()
            assert version_sum(url, a) > before_a
            assert version_sum(url, b) == before_b

    def test_a_duplicate_upload_changes_nothing(self, client, admin, settings):
        pid = make_project(client, admin)["id"]
        data = image_bytes(seed=3)
        upload_ok(client, admin, pid, data, tags="cat")
        before = version_sum(settings.db_url, pid)
        r = client.post(
            f"/v1/projects/{pid}/images", files={"file": ("x.png", data)}, headers=admin
        )
        assert r.status_code == 200
        assert version_sum(settings.db_url, pid) == before

    def test_many_rows_in_one_statement_are_one_bump(self, client, admin, settings):
        pid = make_project(client, admin)["id"]
        for i in range(4):
            upload_ok(client, admin, pid, image_bytes(seed=i), tags="cat")
        before = version_sum(settings.db_url, pid)
        sql(settings.db_url, "UPDATE images SET filename = 'x.png' WHERE project_id = :p", p=pid)
        assert version_sum(settings.db_url, pid) == before + 1

    def test_writers_bump_their_own_shards(self, client, admin, settings):
        """Two connections changing one project at once do not wait on one counter row."""
        pid = make_project(client, admin)["id"]
        ids = [upload_ok(client, admin, pid, image_bytes(seed=i))["id"] for i in range(2)]
        engines = [make_engine(settings.db_url, pool_size=1) for _ in range(2)]
        conns = [e.connect() for e in engines]
        try:
            pids = [c.execute(text("SELECT pg_backend_pid()")).scalar() for c in conns]
            if pids[0] % 16 == pids[1] % 16:
                pytest.skip("both backends fell on one shard")
            stmt = text("UPDATE images SET filename = 'y.png' WHERE id = :i")
            for c, image_id in zip(conns, ids, strict=True):
                c.execute(text("SET lock_timeout = '2s'"))
                c.execute(stmt, {"i": image_id})  # the second would time out behind the first
            assert all(c.in_transaction() for c in conns)
        finally:
            for c in conns:
                c.rollback()
                c.close()
            for e in engines:
                e.dispose()


def test_pages_never_go_back_while_another_app_uploads(pages, make_client, admin):
    """Reads racing writes: the cached app never shows fewer images than it did before."""
    import threading

    other = make_client()
    pid = pages.pid
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(25):
                upload_ok(other, admin, pid, image_bytes(seed=100 + i), tags="cat")
        finally:
            done.set()

    t = threading.Thread(target=writer)
    t.start()
    seen = 0
    while not done.is_set():
        r = pages.cached.get(f"/v1/projects/{pid}/images?limit=100", headers=admin)
        n = len(r.json()["items"])
        assert n >= seen
        seen = n
    t.join()
    final = pages.cached.get(f"/v1/projects/{pid}/images?limit=100", headers=admin).json()
    assert len(final["items"]) == 25
    assert np.all(np.diff([i["id"] for i in final["items"]]) > 0)


def renders(client: Any, admin: dict[str, str]) -> float:
    for line in client.get("/metrics", headers=admin).text.splitlines():
        if line.startswith("tag2mask_list_page_renders_total "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_requests_for_a_page_at_once_share_one_render(pages, make_client, admin):
    """Sixteen requests that find the same page stale at the same moment: each gets the
    page as it is now, and PostgreSQL renders it far fewer times than sixteen."""
    import httpx

    other = make_client()
    pid = pages.pid
    upload_ok(other, admin, pid, image_bytes(seed=1), tags="cat")
    url = f"/v1/projects/{pid}/images?limit=10"
    assert pages.cached.get(url, headers=admin).status_code == 200  # held, keys cached
    upload_ok(other, admin, pid, image_bytes(seed=2), tags="dog")  # now stale
    expected = pages.truth.get(url, headers=admin).json()
    before = renders(pages.cached, admin)

    async def at_once() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=pages.cached.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return list(await asyncio.gather(*(c.get(url, headers=admin) for _ in range(16))))

    answers = pages.cached.portal.call(at_once)
    assert all(r.status_code == 200 and r.json() == expected for r in answers)
    assert len(expected["items"]) == 2
    assert 1 <= renders(pages.cached, admin) - before <= 2


def test_a_changing_page_is_rendered_straight_away_until_it_holds_still(pages, make_client, admin):
    """After a render replaced an older version, the next request renders without reading
    the version first; a render that finds the page unchanged hands it back to the cache."""
    other = make_client()
    pid = pages.pid
    url = f"/v1/projects/{pid}/images?limit=10"

    def step() -> dict[str, float]:
        before = lookups(pages.cached, admin)
        got = pages.cached.get(url, headers=admin)
        assert got.status_code == 200
        assert got.json() == pages.truth.get(url, headers=admin).json()
        after = lookups(pages.cached, admin)
        return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}

    upload_ok(other, admin, pid, image_bytes(seed=1), tags="cat")
    assert step() == {"miss": 1}
    upload_ok(other, admin, pid, image_bytes(seed=2), tags="cat")
    assert step() == {"stale": 1}  # version read, then render: now changing
    upload_ok(other, admin, pid, image_bytes(seed=3), tags="cat")
    assert step() == {"stale": 1}  # rendered straight away, and still changing
    assert step() == {"rerendered": 1}  # rendered straight away, unchanged: quiet again
    assert step() == {"hit": 1}
