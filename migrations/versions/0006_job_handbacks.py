"""jobs.handbacks: attempts a worker handed back do not count against the attempt limit

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 11:40:00

A worker whose database connection drops (a PostgreSQL restart) or that shuts down hands
its job back to the queue; `attempts` still counts that start (it is the fencing token of
every write), and `handbacks` says how many of them ended that way, so that
`job_max_attempts` counts only attempts that failed or whose worker died.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("handbacks", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("handbacks")
