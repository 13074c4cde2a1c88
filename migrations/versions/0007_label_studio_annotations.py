"""label_studio_annotations: Label Studio annotation versions taken in via its webhook

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 11:30:00

Label Studio retries a webhook it thinks failed; the unique (project, annotation id,
updated_at) key lets the second delivery find the first and write nothing
(app/label_studio/annotations.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.tables.base import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "label_studio_annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("ls_annotation_id", sa.Integer(), nullable=False),
        sa.Column("ls_updated_at", sa.String(length=64), nullable=False),
        sa.Column("ls_task_id", sa.Integer(), nullable=True),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("mask_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_label_studio_annotations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_label_studio_annotations_image_id_images"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["mask_id"],
            ["masks.id"],
            name=op.f("fk_label_studio_annotations_mask_id_masks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_studio_annotations")),
        sa.UniqueConstraint(
            "project_id", "ls_annotation_id", "ls_updated_at", name="uq_label_studio_annotation"
        ),
    )


def downgrade() -> None:
    op.drop_table("label_studio_annotations")
