"""The review page: static HTML, CSS and JavaScript from app/static/review, same origin.

The page holds an API key, so it is served with a Content-Security-Policy that lets it
run only its own script files (no inline script, no eval), talk only to this origin, and
never be framed; every string from users is inserted as text by the page itself.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.params import ProjectId
from app.errors import NotFound

STATIC = Path(__file__).resolve().parents[2] / "static" / "review"

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
# The only files served: a fixed list, so no path from the request ever reaches the disk.
ASSETS = {
    "review.css": "text/css; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "png.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
    "editor.js": "text/javascript; charset=utf-8",
    "queue.js": "text/javascript; charset=utf-8",
    "suggestions.js": "text/javascript; charset=utf-8",
    "main.js": "text/javascript; charset=utf-8",
}

router = APIRouter(include_in_schema=False)


def _page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


@router.get("/review")
def review_page() -> FileResponse:
    return _page()


@router.get("/review/{project_id}")
def review_project_page(project_id: ProjectId) -> FileResponse:
    """The same page; its script reads the project id from the path."""
    return _page()


@router.get("/review/assets/{name}")
def review_asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"No review page asset named {name!r}.")
    return FileResponse(STATIC / name, media_type=media_type, headers=PAGE_HEADERS)
