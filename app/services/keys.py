"""API keys: create (secret returned once) and authenticate."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth import generate_key, hash_key
from app.errors import NotFound, Unauthorized, ValidationFailed
from app.services.scope import Principal
from app.tables import ROLES, ApiKey, Project


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


def authenticate(session: Session, authorization: str | None) -> Principal:
    """The principal for an `Authorization: Bearer KEY` header, or 401."""
    if not authorization:
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <key>'.")
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token.strip())))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("The API key is not valid.")
    return Principal(
        key_id=row.id, role=row.role, project_id=row.project_id, name=row.name or f"key-{row.id}"
    )


def has_any_admin(session: Session) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.role == "admin").limit(1)) is not None
