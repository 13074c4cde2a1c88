"""webhook ids never reused; delivery log keeps failure categories, never response bodies

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00

Receivers deduplicate on the delivery id, so an id must never come back. PostgreSQL's
sequences never go back; SQLite hands out max(rowid) + 1 unless a table is declared
AUTOINCREMENT, so after deleting the newest webhook its id (and its deliveries' ids) were
given again. SQLite cannot add AUTOINCREMENT to a table: both tables are rebuilt. The old
ones cannot simply be dropped first: with foreign keys on (they are, on every connection,
and the pragma cannot change inside the migration's transaction) dropping `webhooks` would
cascade into the deliveries. So the new deliveries table first references the new webhooks
table, and SQLite's RENAME rewrites that reference when the new tables take the old names.

`last_error` held up to 300 bytes of the receiver's answer; it now holds a category only
(worker/webhook_dispatch.py), and rows written before are rewritten to their category.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCRUB = """
UPDATE webhook_deliveries SET last_error = CASE
    WHEN last_status_code IS NOT NULL THEN 'http_status'
    WHEN last_error LIKE 'gave up%' THEN 'interrupted'
    ELSE 'unreachable' END
WHERE last_error IS NOT NULL
"""

_SQLITE_REBUILD = (
    """
    CREATE TABLE _new_webhooks (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        project_id INTEGER NOT NULL,
        url VARCHAR(2000) NOT NULL,
        secret VARCHAR(200) NOT NULL,
        events JSON NOT NULL,
        active BOOLEAN NOT NULL,
        created_at DATETIME NOT NULL,
        CONSTRAINT fk_webhooks_project_id_projects FOREIGN KEY(project_id)
            REFERENCES projects (id) ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE _new_webhook_deliveries (
        id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
        webhook_id INTEGER NOT NULL,
        event VARCHAR(64) NOT NULL,
        payload JSON NOT NULL,
        status VARCHAR(16) NOT NULL,
        attempts INTEGER NOT NULL,
        last_status_code INTEGER,
        last_error TEXT,
        next_attempt_at DATETIME NOT NULL,
        created_at DATETIME NOT NULL,
        delivered_at DATETIME,
        CONSTRAINT fk_webhook_deliveries_webhook_id_webhooks FOREIGN KEY(webhook_id)
            REFERENCES _new_webhooks (id) ON DELETE CASCADE
    )
    """,
    "INSERT INTO _new_webhooks (id, project_id, url, secret, events, active, created_at) "
    "SELECT id, project_id, url, secret, events, active, created_at FROM webhooks",
    "INSERT INTO _new_webhook_deliveries (id, webhook_id, event, payload, status, attempts, "
    "last_status_code, last_error, next_attempt_at, created_at, delivered_at) "
    "SELECT id, webhook_id, event, payload, status, attempts, last_status_code, last_error, "
    "next_attempt_at, created_at, delivered_at FROM webhook_deliveries",
    "DROP TABLE webhook_deliveries",
    "DROP TABLE webhooks",
    "ALTER TABLE _new_webhooks RENAME TO webhooks",
    "ALTER TABLE _new_webhook_deliveries RENAME TO webhook_deliveries",
    "CREATE INDEX ix_webhooks_project_id ON webhooks (project_id)",
    "CREATE INDEX ix_webhook_deliveries_status_next_attempt_at "
    "ON webhook_deliveries (status, next_attempt_at)",
    "CREATE INDEX ix_webhook_deliveries_webhook_id_id ON webhook_deliveries (webhook_id, id)",
)


def upgrade() -> None:
    op.execute(_SCRUB)
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE_REBUILD:
            op.execute(statement)


def downgrade() -> None:
    # The scrubbed answers are gone, and AUTOINCREMENT tables work unchanged for the
    # earlier code: nothing to undo.
    pass
