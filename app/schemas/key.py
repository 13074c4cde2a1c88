"""API keys on the wire: never the hash; the secret only in the answer that created it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.schemas.common import BodyId

Role = Literal["admin", "annotator", "viewer"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    project_id: BodyId | None = Field(
        default=None, description="limit the key to one project (a scoped admin's own)"
    )
    name: Annotated[str, StringConstraints(max_length=200)] | None = None


class KeyOut(BaseModel):
    id: int
    role: Role
    project_id: int | None
    name: str | None
    prefix: str = Field(description="the secret's first characters, to tell keys apart")
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the secret; shown in this response only")
