"""Framework errors the contract shapes further: 405 with the path's whole `Allow`, and
a body the framework could not parse (400) as the 422 `validation_error` it really is.

Starlette's 405 lists only the methods of the first route whose path matched, so a path
served by two routes (GET and DELETE /v1/images/{id}) advertised one of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from app.errors import error_response


def install_http_error_handlers(app: FastAPI, routes: Iterable[BaseRoute]) -> None:
    """Handlers for 405 and 400; `routes` are every route of the app (its routers' own)."""
    table = [(r.path_regex, r.methods or set()) for r in routes if isinstance(r, Route)]

    async def method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
        path = request.url.path
        methods: set[str] = set()
        for regex, allowed in table:
            if regex.match(path):
                methods |= allowed
        allow = (
            ", ".join(sorted(methods))
            if methods
            else (getattr(exc, "headers", None) or {}).get("Allow", "")
        )
        return error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed here; allowed: {allow}.",
            headers={"Allow": allow},
        )

    async def unparsable_body(_request: Request, exc: Exception) -> JSONResponse:
        message = exc.detail if isinstance(exc, StarletteHTTPException) else "Bad request"
        return error_response(
            422,
            "validation_error",
            "The request is not valid.",
            [{"loc": ["body"], "msg": str(message), "type": "body_unparsable"}],
        )

    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(400, unparsable_body)
