"""Jobs and their events on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)
    allow_concurrent: bool = Field(
        default=False, description="start even if the project already has an active job"
    )


class JobOut(BaseModel):
    id: int
    project_id: int
    kind: str
    status: str
    stage: str | None
    progress: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    error: dict[str, Any] | None
    attempts: int
    handbacks: int = Field(
        default=0,
        description="attempts their worker handed back (the database connection dropped, or "
        "the worker shut down); they do not count against TAG2MASK_JOB_MAX_ATTEMPTS",
    )
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    eta_seconds: float | None = Field(
        default=None, description="estimated seconds left, once progress allows an estimate"
    )
    has_result: bool = False


class JobEventOut(BaseModel):
    id: int
    ts: datetime
    level: str
    message: str
    data: dict[str, Any] | None
