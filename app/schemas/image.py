"""Images, tags and masks on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ImageOut(BaseModel):
    id: int
    project_id: int
    sha256: str
    width: int
    height: int
    filename: str
    tags: list[str]
    has_human_mask: bool
    has_pseudo_mask: bool
    created_at: datetime


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(max_length=254)


class MaskOut(BaseModel):
    id: int
    image_id: int
    source: Literal["human", "pseudo"]
    review_state: Literal["pending", "accepted", "rejected"]
    job_id: int | None = None
    mean_confidence: float | None = None
    created_at: datetime


class RleClass(BaseModel):
    index: int
    name: str
    rle: dict[str, Any]


class MaskRle(BaseModel):
    width: int
    height: int
    source: str
    mask_id: int
    classes: list[RleClass]


class BatchItem(BaseModel):
    filename: str
    status: Literal["created", "exists", "error"]
    image: ImageOut | None = None
    error: dict[str, Any] | None = None


class BatchResult(BaseModel):
    items: list[BatchItem]
