"""Masks of an image: set the human mask; fetch as PNG, COCO RLE or overlay; confidence."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from app.api.deps import Annotator, CurrentKey, SessionDep, SettingsDep, UowDep
from app.api.http_cache import CACHE_CONTROL, cached_bytes, etag_for, not_modified
from app.errors import NotFound
from app.imaging import decode_png_array, decode_rgb, named_rle, overlay_png, rle_of_blob
from app.schemas.image import MaskOut
from app.services.images import get_image_or_raise
from app.services.masks import find_mask, latest_pseudo, set_human_mask
from app.services.projects import category_colors, category_names, get_project_or_raise
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
    image_id: int,
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


@router.get("/mask", response_model=None)
def get_mask(
    image_id: int,
    request: Request,
    session: SessionDep,
    who: CurrentKey,
    source: Literal["best", "human", "pseudo"] = "best",
    format: Literal["png", "rle", "overlay"] = "png",
) -> Response | dict[str, object]:
    image = get_image_or_raise(session, image_id, who, with_tags=False)
    mask = find_mask(session, image, source)
    blobs = request.app.state.blobs
    headers = {"X-Mask-Id": str(mask.id), "X-Mask-Source": mask.source}
    if format == "png":
        resp = cached_bytes(
            request, lambda: blobs.get(mask.blob_key), etag_for(mask.blob_key), "image/png"
        )
        resp.headers.update(headers)
        return resp
    project = get_project_or_raise(session, image.project_id, who)
    if format == "rle":
        etag = etag_for("rle", mask.blob_key)
        hit = not_modified(request, etag)
        if hit is not None:
            return hit
        body = {
            "width": image.width,
            "height": image.height,
            "source": mask.source,
            "mask_id": mask.id,
            "classes": named_rle(
                rle_of_blob(str(blobs.path(mask.blob_key))), category_names(project)
            ),
        }
        return JSONResponse(body, headers={**headers, "ETag": etag, "Cache-Control": CACHE_CONTROL})
    colors = category_colors(project)
    # The colours are part of the picture: a recoloured category changes the ETag.
    palette = hashlib.sha256(repr(sorted(colors.items())).encode()).hexdigest()[:16]
    etag = etag_for("overlay", mask.blob_key, image.blob_key, palette)

    def render() -> bytes:
        rgb = decode_rgb(blobs.get(image.blob_key), request.app.state.settings.max_image_pixels)
        return overlay_png(rgb, decode_png_array(blobs.get(mask.blob_key)), colors)

    resp = cached_bytes(request, render, etag, "image/png")
    resp.headers.update(headers)
    return resp


@router.get("/confidence")
def get_confidence(
    image_id: int, request: Request, session: SessionDep, who: CurrentKey
) -> Response:
    image = get_image_or_raise(session, image_id, who, with_tags=False)
    mask = latest_pseudo(session, image.id)
    if mask is None or mask.confidence_key is None:
        raise NotFound(f"Image {image_id} has no pseudo-mask yet, so no confidence map.")
    blobs = request.app.state.blobs
    key = mask.confidence_key
    resp = cached_bytes(request, lambda: blobs.get(key), etag_for(key), "image/png")
    resp.headers["X-Mask-Id"] = str(mask.id)
    return resp
