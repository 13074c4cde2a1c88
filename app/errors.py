"""API errors with stable codes, and the handlers that render them as JSON.

Every 4xx/5xx body is `{"error": {"code", "message", "detail"?}}`; tracebacks never leave
the server (an unhandled error answers 500 with a request id that is in the log). A lost or
refused connection to the database or the broker answers 503 with Retry-After instead.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; `code` is stable, `message` is for people."""

    code = "error"
    status = 400

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Unauthorized(ApiError):
    code, status = "unauthorized", 401


class Forbidden(ApiError):
    code, status = "forbidden", 403


class NotFound(ApiError):
    code, status = "not_found", 404


class Conflict(ApiError):
    code, status = "conflict", 409


class PayloadTooLarge(ApiError):
    code, status = "payload_too_large", 413


class InvalidImage(ApiError):
    code, status = "invalid_image", 422


class ImageTooLarge(ApiError):
    code, status = "image_too_large", 422


class InvalidMask(ApiError):
    code, status = "invalid_mask", 422


class MaskSizeMismatch(ApiError):
    code, status = "mask_size_mismatch", 422


class UnknownClassIndex(ApiError):
    code, status = "unknown_class_index", 422


class UnknownTag(ApiError):
    code, status = "unknown_tag", 422


class ValidationFailed(ApiError):
    code, status = "validation_error", 422


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        err["detail"] = detail
    return {"error": err}


def error_response(
    status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Field errors without echoing the (possibly huge or binary) input back."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as the contract's JSON body."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, exc.detail, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "validation_error", "The request is not valid.", _validation_detail(exc)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404:
            message = "No such route."
        return error_response(exc.status_code, code, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Only errors outside UnhandledErrors get here (Starlette re-raises them after this
        # answer, and the server closes the connection).
        return server_error(exc, request.method, request.url.path)


# Seconds a client is told to wait (Retry-After) when a dependency does not answer.
RETRY_AFTER_S = 2


def dependency_down(exc: BaseException) -> str | None:
    """ "database" or "broker" when `exc` (or what caused it) is a lost or refused connection
    to one of them, else None. Such a request may succeed when retried a little later."""
    import psycopg
    import redis.exceptions
    from kombu.exceptions import OperationalError as KombuOperationalError
    from sqlalchemy import exc as sa_exc

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            sa_exc.OperationalError
            | sa_exc.InterfaceError
            | sa_exc.TimeoutError
            | sa_exc.DisconnectionError
            | psycopg.OperationalError
            | psycopg.InterfaceError,
        ) or (isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated):
            return "database"
        if isinstance(
            current,
            redis.exceptions.ConnectionError
            | redis.exceptions.TimeoutError
            | KombuOperationalError,
        ):
            return "broker"
        current = current.__cause__ or current.__context__
    return None


def unavailable(what: str) -> JSONResponse:
    """503 with Retry-After: the request did not happen for want of the database or broker."""
    return error_response(
        503,
        "unavailable",
        f"The {what} does not answer; retry shortly.",
        {"dependency": what},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def server_error(exc: BaseException, method: str, path: str) -> JSONResponse:
    """The answer for an exception no handler took: 503 when a dependency is down, else 500."""
    what = dependency_down(exc)
    if what is not None:
        log.warning("%s unavailable on %s %s: %s", what, method, path, type(exc).__name__)
        return unavailable(what)
    return internal_error(method, path)


def internal_error(method: str, path: str) -> JSONResponse:
    """The 500 for an exception being handled: logged with a request id, no internals sent."""
    request_id = uuid.uuid4().hex[:12]
    log.exception("unhandled error %s on %s %s", request_id, method, path)
    return error_response(
        500, "internal_error", "Internal server error.", {"request_id": request_id}
    )


class UnhandledErrors:
    """ASGI middleware: an exception no handler took becomes the JSON 500 here, and ends there.

    Starlette's ServerErrorMiddleware (where an `exception_handler(Exception)` runs) sends
    its 500 and then re-raises for the server to log, and uvicorn answers a re-raised error
    by closing the connection: a keep-alive client's next request on it failed. Answered
    here, the request ends normally. An exception after the response started is re-raised:
    the body was cut short, and only a closed connection tells the client so.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception as exc:
            if started:
                raise
            response = server_error(exc, scope.get("method", ""), scope.get("path", ""))
            await response(scope, receive, send)
