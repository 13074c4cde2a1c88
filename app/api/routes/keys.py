"""API keys: list, create and revoke (admin). Hashes never leave; a secret only once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from app.api.deps import Admin, SessionDep, UowDep
from app.api.params import KeyId
from app.api.responses import errors
from app.schemas.key import KeyCreate, KeyCreated, KeyOut
from app.services import keys as svc
from app.tables import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def key_out(k: ApiKey) -> KeyOut:
    return KeyOut(
        id=k.id,
        role=k.role,  # type: ignore[arg-type]
        project_id=k.project_id,
        name=k.name,
        prefix=k.prefix,
        created_at=k.created_at,
        revoked_at=k.revoked_at,
    )


@router.get("", response_model=dict[str, list[KeyOut]], responses=errors(401, 403, 422))
def list_keys(
    session: SessionDep,
    who: Admin,
    include_revoked: Annotated[bool, Query()] = True,
) -> dict[str, list[KeyOut]]:
    """Every key this admin may manage (a scoped admin: its project's), oldest first."""
    keys = svc.list_keys(session, who, include_revoked=include_revoked)
    return {"items": [key_out(k) for k in keys]}


@router.post("", status_code=201, response_model=KeyCreated, responses=errors(401, 403, 404, 422))
def create_key(body: KeyCreate, session: SessionDep, who: Admin) -> JSONResponse:
    """A new key; its secret is in this answer only (only its sha256 is stored)."""
    project_id = svc.check_can_create(who, body.project_id)
    row, secret = svc.create_key(session, body.role, project_id, body.name)
    created = KeyCreated(**key_out(row).model_dump(), key=secret)
    return JSONResponse(
        created.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/keys/{row.id}"},
    )


@router.post("/{key_id}/revoke", response_model=KeyOut, responses=errors(401, 403, 404, 409, 422))
def revoke_key(key_id: KeyId, request: Request, uow: UowDep, who: Admin) -> KeyOut:
    """Revoke a key: 401 from then on (in this API process at once, in others within
    TAG2MASK_AUTH_CACHE_TTL_S: their key caches)."""
    row = svc.revoke_key(uow.session, key_id, who)
    cache = request.app.state.principals
    if cache is not None:
        # After the commit: dropped earlier, a request in between could cache it again.
        uow.after_commit(lambda: cache.drop_key(key_id))
    return key_out(row)
