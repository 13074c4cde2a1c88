"""Review, sync, region-score and suggestion payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import BodyId
from app.schemas.image import ImageOut

Decision = Literal["accept", "reject"]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Decision
    comment: str | None = Field(default=None, max_length=2000)


class BatchReviewItem(ReviewIn):
    mask_id: BodyId


class BatchReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[BatchReviewItem] = Field(min_length=1, max_length=1000)


class MaskDetail(BaseModel):
    id: int
    image_id: int
    project_id: int
    source: Literal["human", "pseudo"]
    review_state: Literal["pending", "accepted", "rejected"]
    job_id: int | None
    model_version_id: int | None
    mean_confidence: float | None
    reviewer: str | None
    reviewed_at: datetime | None
    review_comment: str | None
    corrected_from_id: int | None
    superseded: bool
    created_at: datetime
    updated_at: datetime


class BatchReviewResult(BaseModel):
    mask_id: int
    status: Literal["ok", "error"]
    mask: MaskDetail | None = None
    error: dict[str, Any] | None = None


class Region(BaseModel):
    id: int
    bbox: list[int]
    score: float


class RegionScores(BaseModel):
    mask_id: int
    image_id: int
    regions: list[Region]
    weakest: list[Region]


class ReviewQueueItem(BaseModel):
    mask_id: int
    image: ImageOut
    mean_confidence: float | None
    job_id: int | None
    weakest_regions: list[Region]
    created_at: datetime


class Suggestion(BaseModel):
    image: ImageOut
    score: float
    reason: str
    reasons: dict[str, Any]


class CategoryNeed(BaseModel):
    index: int
    name: str
    human_masks: int
    heldout_iou: float | None
    strong: bool


class Suggestions(BaseModel):
    job_id: int | None
    items: list[Suggestion]
    categories: list[CategoryNeed]
