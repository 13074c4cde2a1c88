"""Label Studio annotations already taken in: what makes its webhook retries harmless."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.tables.base import Base, utcnow


class LabelStudioAnnotation(Base):
    """One version of one Label Studio annotation (its id and `updated_at`), taken in once.

    Label Studio sends a webhook again when the first attempt timed out, and an
    ANNOTATION_UPDATED of the same version carries the same `updated_at`: the unique key
    makes the second insert fail, in the transaction that would have written its mask.
    """

    __tablename__ = "label_studio_annotations"
    __table_args__ = (
        UniqueConstraint(
            "project_id", "ls_annotation_id", "ls_updated_at", name="uq_label_studio_annotation"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ls_annotation_id: Mapped[int]
    ls_updated_at: Mapped[str] = mapped_column(String(64))
    ls_task_id: Mapped[int | None]
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    mask_id: Mapped[int | None] = mapped_column(ForeignKey("masks.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
