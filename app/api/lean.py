"""The lean read path of the hot routes: mask PNG/RLE, confidence, image bytes, list pages.

These routes are what a labeling frontend polls, so they skip what a general route pays
for: no ORM session and no transaction (prebuilt Core statements in autocommit, on
PostgreSQL awaited on the event loop, see app/pg_reads.py), the key from the in-process
cache, and blob bytes and COCO RLE from in-memory caches (blobs are content-addressed: an
entry is never stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request, Response
from sqlalchemy import Executable

from app.api.deps import cached_principal
from app.api.http_cache import CACHE_CONTROL, etag_for, not_modified
from app.auth import hash_key
from app.imaging import rle_of_png
from app.services.keys import KEY_BY_HASH, bearer_token, principal_of
from app.services.projects import PROJECT_REF, ProjectRef, project_not_found, project_ref_of
from app.services.scope import Principal
from app.signing import SIG


async def lean_rows(request: Request, stmt: Executable, params: dict[str, Any]) -> list[Any]:
    """All rows of a Core statement, outside any transaction (autocommit).

    PostgreSQL: straight on psycopg's asyncio API (app/pg_reads.py), no thread hop.
    Elsewhere (SQLite, the embedded mode): a worker thread on the main engine, after taking
    an admission slot like get_uow, so it never waits for a connection while holding a
    thread that a connection holder needs.
    """
    reader = request.app.state.pg_reader
    if reader is not None:
        return await reader.rows(stmt, params)
    engine = request.app.state.engine

    def work() -> list[Any]:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            return list(conn.execute(stmt, params).all())

    async with request.app.state.db_slots:
        return await anyio.to_thread.run_sync(work)


async def lean_first(request: Request, stmt: Executable, params: dict[str, Any]) -> Any:
    rows = await lean_rows(request, stmt, params)
    return rows[0] if rows else None


async def lean_principal(request: Request) -> Principal:
    """The caller's key: from the cache, else looked up without the ORM (then cached)."""
    hit = cached_principal(request)
    if hit is not None:
        return hit
    header = request.headers.get("authorization")
    key_hash = hash_key(bearer_token(header))  # a missing or malformed header: 401
    principal = principal_of(await lean_first(request, KEY_BY_HASH, {"key_hash": key_hash}))
    cache = request.app.state.principals
    if cache is not None and header:
        cache.put(header, principal)
    return principal


LeanKey = Annotated[Principal, Depends(lean_principal)]

# Who a valid signed URL speaks for: a reader of that one path (app/signing.py).
SIGNED_URL = Principal(key_id=0, role="viewer", project_id=None, name="signed-url")


async def key_or_signature(request: Request) -> Principal:
    """The caller's key; without an Authorization header, a signed URL's signature (or 401)."""
    params = request.query_params
    if "authorization" not in request.headers and SIG in params:
        request.app.state.signer.verify(request.url.path, params.multi_items())
        return SIGNED_URL
    return await lean_principal(request)


LeanKeyOrSigned = Annotated[Principal, Depends(key_or_signature)]


async def lean_annotator(who: LeanKey) -> Principal:
    who.require("annotator")
    return who


LeanAnnotator = Annotated[Principal, Depends(lean_annotator)]


async def lean_project(
    request: Request, project_id: int, who: Principal, tags: Sequence[str] = ()
) -> ProjectRef:
    """The project's id and categories, from the per-process cache when it knows `tags`.

    Categories are append-only (no rename, no delete), so a cached ref is never wrong,
    only possibly short of categories added since: a tag it does not know reads the
    project again before anyone is told the tag is unknown.
    """
    if not who.can_see(project_id):
        raise project_not_found(project_id)
    cache = request.app.state.project_refs
    ref = cache.get(project_id)
    if ref is None or not set(tags) <= {c.name for c in ref.categories}:
        rows = await lean_rows(request, PROJECT_REF, {"project_id": project_id})
        ref = project_ref_of(rows, project_id, who)
        cache.put(project_id, ref)
    return ref


async def read_blob(request: Request, key: str) -> bytes:
    """A blob's bytes: from the in-memory cache, else read on a worker thread (and cached)."""
    cache = request.app.state.blob_cache
    data = cache.get(key)
    if data is None:
        data = await anyio.to_thread.run_sync(request.app.state.blobs.get, key)
        cache.put(key, data)
    return data


async def blob_response(
    request: Request,
    key: str,
    media_type: str,
    headers: dict[str, str] | None = None,
) -> Response:
    """The blob with its strong ETag (the key), or 304 without reading it."""
    etag = etag_for(key)
    resp = not_modified(request, etag)
    if resp is None:
        resp = Response(
            content=await read_blob(request, key),
            media_type=media_type,
            headers={"ETag": etag, "Cache-Control": CACHE_CONTROL},
        )
    if headers:
        resp.headers.update(headers)
    return resp


async def mask_rles(request: Request, key: str) -> tuple[tuple[int, tuple[int, int], str], ...]:
    """COCO RLE per class of a mask blob, computed once per blob on a worker thread."""
    cache = request.app.state.rle_cache
    rles = cache.get(key)
    if rles is None:
        rles = await anyio.to_thread.run_sync(rle_of_png, await read_blob(request, key))
        cache.put(key, rles)
    return rles
