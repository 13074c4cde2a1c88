"""Strong ETags for content-addressed bytes, and 304 answers to If-None-Match."""

from __future__ import annotations

from fastapi import Request, Response

CACHE_CONTROL = "private, max-age=0, must-revalidate"


def etag_for(*parts: object) -> str:
    return '"' + "-".join(str(p) for p in parts) + '"'


def not_modified(request: Request, etag: str) -> Response | None:
    """A 304 when the client already holds `etag`, else None."""
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    tags = {t.strip() for t in header.split(",")}
    if etag in tags or "*" in tags:
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})
    return None
