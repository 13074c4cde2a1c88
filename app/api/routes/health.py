"""Liveness, readiness and Prometheus metrics (no key needed)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.api.responses import errors
from app.errors import RETRY_AFTER_S, error_response
from app.migrate import schema_is_current

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _not_ready(message: str, dependency: str) -> Response:
    return error_response(
        503,
        "not_ready",
        message,
        {"dependency": dependency},
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def broker_ping(redis_url: str, timeout_s: float = 1.0) -> None:
    """Raise unless the Celery broker (Redis) answers PING within `timeout_s`."""
    client = redis.Redis.from_url(
        redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        client.ping()
    finally:
        client.close()


@router.get("/readyz", response_model=None, responses=errors(503))
def readyz(request: Request) -> dict[str, str] | Response:
    """Ready when the database answers, its schema is at the newest migration and, with the
    Celery runner, the broker answers: a 503 names the dependency that does not."""
    engine = request.app.state.engine
    settings = request.app.state.settings
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = schema_is_current(engine)
    except Exception as e:
        return _not_ready(f"The database does not answer: {type(e).__name__}.", "database")
    if not current:
        return _not_ready("The database schema is not at the newest migration.", "database")
    if settings.job_runner == "celery":
        try:
            broker_ping(settings.redis_url)
        except Exception as e:
            return _not_ready(f"The broker does not answer: {type(e).__name__}.", "broker")
    return {"status": "ready"}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
