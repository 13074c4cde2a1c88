"""One mask's own bytes by mask id: its class-index PNG and its confidence map.

The image routes (`/v1/images/{id}/mask`, `/confidence`) answer the image's best or
latest mask, which can change between a reviewer's queue read and the fetch; a review
page that shows mask N and then accepts or corrects mask N needs N's own pixels.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import bindparam, select

from app.api.lean import LeanKey, blob_response, lean_first
from app.api.params import MaskId
from app.api.responses import ok_bytes
from app.errors import NotFound
from app.tables import Mask

router = APIRouter(prefix="/v1/masks/{mask_id}", tags=["review"])

MASK_BLOBS = select(
    Mask.project_id, Mask.image_id, Mask.source, Mask.blob_key, Mask.confidence_key
).where(Mask.id == bindparam("mask_id"))


async def _mask_row(request: Request, mask_id: int, who: LeanKey) -> Any:
    row = await lean_first(request, MASK_BLOBS, {"mask_id": mask_id})
    if row is None or not who.can_see(row.project_id):
        raise NotFound(f"Mask {mask_id} does not exist.")
    return row


def _headers(mask_id: int, row: Any) -> dict[str, str]:
    return {
        "X-Mask-Id": str(mask_id),
        "X-Mask-Source": row.source,
        "X-Image-Id": str(row.image_id),
    }


@router.get(
    "/file",
    response_class=Response,
    responses=ok_bytes("image/png", description="The mask's class-index PNG"),
)
async def mask_file(mask_id: MaskId, request: Request, who: LeanKey) -> Response:
    row = await _mask_row(request, mask_id, who)
    return await blob_response(request, row.blob_key, "image/png", _headers(mask_id, row))


@router.get(
    "/confidence",
    response_class=Response,
    responses=ok_bytes("image/png", description="The mask's per-pixel confidence, 0..255"),
)
async def mask_confidence(mask_id: MaskId, request: Request, who: LeanKey) -> Response:
    row = await _mask_row(request, mask_id, who)
    key = row.confidence_key
    if key is None:
        raise NotFound(f"Mask {mask_id} has no confidence map (only pseudo-masks have one).")
    return await blob_response(request, key, "image/png", _headers(mask_id, row))
