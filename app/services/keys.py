"""API keys: create (secret returned once), list, revoke and authenticate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.auth import generate_key, hash_key
from app.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from app.services.scope import Principal
from app.tables import ROLES, ApiKey, Project, utcnow


def create_key(
    session: Session, role: str, project_id: int | None = None, name: str | None = None
) -> tuple[ApiKey, str]:
    """A new key row and its secret (the secret is never stored)."""
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}.")
    if project_id is not None and session.get(Project, project_id) is None:
        raise NotFound(f"Project {project_id} does not exist.")
    secret = generate_key()
    row = ApiKey(
        key_hash=hash_key(secret), prefix=secret[:8], role=role, project_id=project_id, name=name
    )
    session.add(row)
    session.flush()
    return row, secret


def bearer_token(authorization: str | None) -> str:
    """The key of an `Authorization: Bearer KEY` header, or 401 (no I/O)."""
    if not authorization:
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <key>'.")
    return token.strip()


# Columns, not the entity: the lean routes run it without the ORM (see app/api/lean.py).
KEY_BY_HASH = select(
    ApiKey.id, ApiKey.role, ApiKey.project_id, ApiKey.name, ApiKey.revoked_at
).where(ApiKey.key_hash == bindparam("key_hash"))


def principal_of(row: Any) -> Principal:
    """The principal of a KEY_BY_HASH row; 401 for no row or a revoked key."""
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The API key is not valid.")
    return Principal(
        key_id=row.id, role=row.role, project_id=row.project_id, name=row.name or f"key-{row.id}"
    )


def authenticate(session: Session, authorization: str | None) -> Principal:
    """The principal for an `Authorization: Bearer KEY` header, or 401."""
    key_hash = hash_key(bearer_token(authorization))
    return principal_of(session.execute(KEY_BY_HASH, {"key_hash": key_hash}).first())


def has_any_admin(session: Session) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.role == "admin").limit(1)) is not None


def check_can_create(who: Principal, project_id: int | None) -> int | None:
    """The project a key `who` creates is limited to: a scoped admin makes keys of its own
    project only (never an unscoped one, which would be a way out of its scope)."""
    if who.project_id is None:
        return project_id
    if project_id not in (None, who.project_id):
        raise Forbidden(f"This key may only create keys of project {who.project_id}.")
    return who.project_id


def list_keys(session: Session, who: Principal, *, include_revoked: bool = True) -> list[ApiKey]:
    """Keys `who` may manage, oldest first: all of them, or a scoped admin's project's."""
    stmt = select(ApiKey).order_by(ApiKey.id)
    if who.project_id is not None:
        stmt = stmt.where(ApiKey.project_id == who.project_id)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_key(session: Session, key_id: int, who: Principal) -> ApiKey:
    """Revoke a key (again: unchanged); 404 outside `who`'s scope, 409 for the caller's own.

    A key cannot revoke itself: that is how an admin locks the last door by mistake.
    """
    row = session.get(ApiKey, key_id)
    if row is None or not (who.project_id is None or row.project_id == who.project_id):
        raise NotFound(f"API key {key_id} does not exist.")
    if row.id == who.key_id:
        raise Conflict(
            "A key cannot revoke itself; use another admin key or `tag2mask keys revoke`.",
            {"key_id": key_id},
        )
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row
