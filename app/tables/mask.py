"""Masks: human (uploaded) or pseudo (written by a job), with review state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.tables.base import Base, TimestampMixin

MASK_SOURCES = ("human", "pseudo")
REVIEW_STATES = ("pending", "accepted", "rejected")


class Mask(TimestampMixin, Base):
    __tablename__ = "masks"
    __table_args__ = (
        # A re-delivered job writes each image's pseudo-mask once.
        UniqueConstraint("job_id", "image_id"),
        Index("ix_masks_image_id_source", "image_id", "source"),
        # frontend sync: a project's masks changed since T, keyset on (updated_at, id)
        Index("ix_masks_project_id_updated_at_id", "project_id", "updated_at", "id"),
        # image lists filtered by has_*_mask / review_state, driven in image id order
        Index("ix_masks_project_id_source_image_id", "project_id", "source", "image_id"),
        Index(
            "ix_masks_project_id_source_review_state_image_id",
            "project_id",
            "source",
            "review_state",
            "image_id",
        ),
        # review queue: pending pseudo-masks, lowest confidence first
        Index(
            "ix_masks_project_id_review_queue",
            "project_id",
            "source",
            "review_state",
            "mean_confidence",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Denormalised from the image so per-project mask queries need no join.
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(16))
    blob_key: Mapped[str] = mapped_column(String(64))
    confidence_key: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mean_confidence: Mapped[float | None]
    region_scores: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    review_state: Mapped[str] = mapped_column(String(16), default="pending")
    reviewer: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None]
    review_comment: Mapped[str | None] = mapped_column(String(2000))
    corrected_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("masks.id", ondelete="SET NULL")
    )
