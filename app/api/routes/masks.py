"""Masks of an image: set the human mask; fetch as PNG, COCO RLE or overlay; confidence."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from app.api.deps import Annotator, SettingsDep, UowDep
from app.api.http_cache import CACHE_CONTROL, etag_for, not_modified
from app.api.lean import LeanKeyOrSigned, blob_response, lean_first, lean_rows, mask_rles
from app.api.params import ImageId
from app.api.responses import BINARY, declares_304, ok_bytes
from app.imaging import decode_png_array, decode_rgb, named_rle, overlay_png
from app.schemas.image import MaskOut, MaskRle
from app.services.images import get_image_or_raise
from app.services.masks import (
    LATEST_CONFIDENCE,
    check_confidence,
    check_image_mask,
    image_mask_stmt,
    set_human_mask,
)
from app.services.projects import CATEGORY_ROWS, get_project_or_raise
from app.tables import Mask

router = APIRouter(prefix="/v1/images/{image_id}", tags=["masks"])


def mask_out(m: Mask) -> MaskOut:
    return MaskOut(
        id=m.id,
        image_id=m.image_id,
        source=m.source,
        review_state=m.review_state,  # type: ignore[arg-type]
        job_id=m.job_id,
        mean_confidence=m.mean_confidence,
        created_at=m.created_at,
    )


@router.put("/mask", response_model=MaskOut)
def put_mask(
    image_id: ImageId,
    uow: UowDep,
    settings: SettingsDep,
    who: Annotator,
    file: Annotated[UploadFile, File()],
) -> MaskOut:
    image = get_image_or_raise(uow.session, image_id, who)
    project = get_project_or_raise(uow.session, image.project_id, who)
    mask = set_human_mask(
        uow, image, project, file.file.read(), max_pixels=settings.max_image_pixels
    )
    return mask_out(mask)


@router.get(
    "/mask",
    response_model=None,
    responses={
        200: {
            "model": MaskRle,
            "description": "format=png: the class-index PNG; overlay: an RGB PNG for people; "
            "rle: COCO RLE per class (JSON)",
            "content": {"image/png": BINARY},
        },
        **declares_304(),
    },
)
async def get_mask(
    image_id: ImageId,
    request: Request,
    who: LeanKeyOrSigned,
    source: Literal["best", "human", "pseudo"] = "best",
    format: Literal["png", "rle", "overlay"] = "png",
) -> Response:
    """A lean route (see app/api/lean.py): frontends poll it while people review."""
    row = await lean_first(request, image_mask_stmt(source), {"image_id": image_id})
    m = check_image_mask(row, image_id, who, source)
    cats = []
    if format != "png":
        cats = await lean_rows(request, CATEGORY_ROWS, {"project_id": m.project_id})
    headers = {"X-Mask-Id": str(m.mask_id), "X-Mask-Source": m.source}
    if format == "png":
        return await blob_response(request, m.blob_key, "image/png", headers)
    if format == "rle":
        etag = etag_for("rle", m.blob_key)
        hit = not_modified(request, etag)
        if hit is not None:
            return hit
        body = {
            "width": m.width,
            "height": m.height,
            "source": m.source,
            "mask_id": m.mask_id,
            "classes": named_rle(
                await mask_rles(request, m.blob_key), {c.class_index: c.name for c in cats}
            ),
        }
        return JSONResponse(body, headers={**headers, "ETag": etag, "Cache-Control": CACHE_CONTROL})
    colors = {c.class_index: c.color for c in cats}
    # The colours are part of the picture: a recoloured category changes the ETag.
    palette = hashlib.sha256(repr(sorted(colors.items())).encode()).hexdigest()[:16]
    etag = etag_for("overlay", m.blob_key, m.image_blob_key, palette)
    blobs = request.app.state.blobs
    max_pixels = request.app.state.settings.max_image_pixels

    def render() -> bytes:
        rgb = decode_rgb(blobs.get(m.image_blob_key), max_pixels)
        return overlay_png(rgb, decode_png_array(blobs.get(m.blob_key)), colors)

    hit = not_modified(request, etag)
    if hit is None:
        hit = Response(
            content=await anyio.to_thread.run_sync(render),
            media_type="image/png",
            headers={"ETag": etag, "Cache-Control": CACHE_CONTROL},
        )
    hit.headers.update(headers)
    return hit


@router.get(
    "/confidence",
    response_class=Response,
    responses=ok_bytes("image/png", description="Per-pixel confidence, 0..255"),
)
async def get_confidence(image_id: ImageId, request: Request, who: LeanKeyOrSigned) -> Response:
    row = await lean_first(request, LATEST_CONFIDENCE, {"image_id": image_id})
    m = check_confidence(row, image_id, who)
    return await blob_response(
        request, m.confidence_key, "image/png", {"X-Mask-Id": str(m.mask_id)}
    )
