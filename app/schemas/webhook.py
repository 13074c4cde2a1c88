"""Webhooks and their delivery log on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.tables import WEBHOOK_EVENTS

WebhookEvent = Literal["job.finished", "mask.reviewed"]
assert set(get_args(WebhookEvent)) == set(WEBHOOK_EVENTS), "keep in step with the table"

MAX_URL_LENGTH = 2000


def check_webhook_url(url: str) -> str:
    """An absolute http(s) URL with a host; raises ValueError otherwise (no other policy)."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValueError(f"url must be 1 to {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError("url must not contain whitespace or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ValueError("url must be an http:// or https:// URL")
    try:
        host, _port = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError as e:
        raise ValueError(f"url is not valid: {e}") from e
    if not host:
        raise ValueError("url must name a host")
    return url


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL that receives the POSTs")
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(WEBHOOK_EVENTS),
        min_length=1,
        description="events to send; all of them when left out",
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="HMAC key for the signatures; generated (and shown once) when left out",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_webhook_url(url)

    @field_validator("events")
    @classmethod
    def _dedupe(cls, events: list[str]) -> list[str]:
        return [e for e in WEBHOOK_EVENTS if e in set(events)]


class WebhookOut(BaseModel):
    id: int
    project_id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="the signing secret; shown in this response only")


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None = Field(
        description="when the next attempt is due (null once delivered or failed)"
    )
    delivered_at: datetime | None
    payload: dict[str, Any]
