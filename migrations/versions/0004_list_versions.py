"""list versions: per-project change counters kept by PostgreSQL triggers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:40:00

What the counters are for: app/tables/list_version.py and app/api/list_cache.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables whose rows carry project_id, and how image_tags rows find theirs.
_PROJECT_OF = {
    "images": "changed.project_id",
    "masks": "changed.project_id",
    "categories": "changed.project_id",
    "image_tags": "(SELECT c.project_id FROM categories AS c WHERE c.id = changed.category_id)",
}
_EVENTS = {"insert": "NEW", "update": "NEW", "delete": "OLD"}


def _function(table: str) -> str:
    # One statement per changing statement, whatever its row count. The join with
    # projects drops the rows of a project deleted in this transaction (its cascades fire
    # these triggers too, after the project row is gone). 16 = ListVersion's SHARDS.
    return f"""
CREATE FUNCTION bump_list_version_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO list_versions AS v (project_id, shard, version)
    SELECT DISTINCT p.id, pg_backend_pid() % 16, 1
    FROM changed JOIN projects AS p ON p.id = {_PROJECT_OF[table]}
    ON CONFLICT (project_id, shard) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END
$$"""


def upgrade() -> None:
    op.create_table(
        "list_versions",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_list_versions_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "shard", name=op.f("pk_list_versions")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _PROJECT_OF:
        op.execute(_function(table))
        for event, which in _EVENTS.items():
            op.execute(
                f"CREATE TRIGGER list_version_{event} AFTER {event.upper()} ON {table} "
                f"REFERENCING {which} TABLE AS changed FOR EACH STATEMENT "
                f"EXECUTE FUNCTION bump_list_version_{table}()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _PROJECT_OF:
            for event in _EVENTS:
                op.execute(f"DROP TRIGGER list_version_{event} ON {table}")
            op.execute(f"DROP FUNCTION bump_list_version_{table}()")
    op.drop_table("list_versions")
