"""Review workflow and frontend delivery: queue, decisions, corrections, sync, regions, budget."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from app.api.deps import Annotator, CurrentKey, SessionDep, SettingsDep, UowDep
from app.api.http_cache import CACHE_CONTROL, etag_for, not_modified
from app.api.params import Cursor, ImageId, IsoDatetime, MaskId, ProjectId
from app.api.responses import declares_304, errors
from app.errors import ApiError, NotFound, error_body
from app.schemas.common import Page
from app.schemas.review import (
    BatchReviewIn,
    BatchReviewResult,
    MaskDetail,
    RegionScores,
    ReviewIn,
    ReviewQueueItem,
    Suggestions,
)
from app.services import review as svc
from app.services.images import get_image_or_raise, image_views
from app.services.masks import latest_pseudo, set_human_mask
from app.services.projects import get_project_or_raise
from app.services.suggestions import suggest
from app.tables import Mask
from app.unit_of_work import Savepoint

router = APIRouter(tags=["review"])


def _detail(session, mask: Mask) -> MaskDetail:
    return svc.mask_detail(mask, svc.is_superseded(session, mask))


@router.get("/v1/projects/{project_id}/review-queue", response_model=Page[ReviewQueueItem])
def review_queue(
    project_id: ProjectId,
    session: SessionDep,
    who: CurrentKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor | None = None,
) -> Page[ReviewQueueItem]:
    project = get_project_or_raise(session, project_id, who)
    rows, nxt = svc.review_queue(session, project, limit=limit, cursor=cursor)
    views = {v.id: v for v in image_views(session, [im for _, im in rows])}
    items = [
        ReviewQueueItem(
            mask_id=m.id,
            image=views[im.id],
            mean_confidence=m.mean_confidence,
            job_id=m.job_id,
            weakest_regions=svc.weakest(m.region_scores),
            created_at=m.created_at,
        )
        for m, im in rows
    ]
    return Page[ReviewQueueItem](items=items, next_cursor=nxt)


@router.get("/v1/masks/{mask_id}", response_model=MaskDetail)
def get_mask(mask_id: MaskId, session: SessionDep, who: CurrentKey) -> MaskDetail:
    return _detail(session, svc.get_mask_or_raise(session, mask_id, who))


@router.post("/v1/masks/{mask_id}/review", response_model=MaskDetail, responses=errors(409))
def review_mask(mask_id: MaskId, body: ReviewIn, session: SessionDep, who: Annotator) -> MaskDetail:
    mask = svc.get_mask_or_raise(session, mask_id, who)
    return _detail(session, svc.review_mask(session, mask, body.decision, body.comment, who))


@router.post("/v1/projects/{project_id}/reviews", response_model=dict[str, list[BatchReviewResult]])
def review_batch(
    project_id: ProjectId, body: BatchReviewIn, uow: UowDep, who: Annotator
) -> dict[str, list[BatchReviewResult]]:
    """Many decisions at once; each stands or falls alone."""
    session = uow.session
    project = get_project_or_raise(session, project_id, who)
    results: list[BatchReviewResult] = []
    for item in body.items:
        try:
            with Savepoint(uow):
                mask = svc.get_mask_or_raise(session, item.mask_id, who)
                if mask.project_id != project.id:
                    raise NotFound(f"Mask {item.mask_id} does not exist in project {project.id}.")
                svc.review_mask(session, mask, item.decision, item.comment, who)
                detail = _detail(session, mask)
            results.append(BatchReviewResult(mask_id=item.mask_id, status="ok", mask=detail))
        except ApiError as e:
            results.append(
                BatchReviewResult(
                    mask_id=item.mask_id,
                    status="error",
                    error=error_body(e.code, e.message, e.detail)["error"],
                )
            )
    return {"items": results}


@router.post(
    "/v1/masks/{mask_id}/correction",
    response_model=MaskDetail,
    status_code=201,
    responses=errors(409),
)
def correct_mask(
    mask_id: MaskId,
    uow: UowDep,
    settings: SettingsDep,
    who: Annotator,
    file: Annotated[UploadFile, File()],
    if_current: Annotated[
        bool,
        Query(
            description="409 `conflict` when a newer run or a human mask superseded the mask "
            "(what a reviewer who corrected this mask's pixels wants); off by default"
        ),
    ] = False,
) -> MaskDetail:
    """A corrected mask becomes the image's human mask, remembering which mask it corrected."""
    session = uow.session
    original = svc.get_mask_or_raise(session, mask_id, who)
    if if_current:
        svc.require_current(session, original)
    image = get_image_or_raise(session, original.image_id, who)
    project = get_project_or_raise(session, image.project_id, who)
    human = set_human_mask(
        uow,
        image,
        project,
        file.file.read(),
        max_pixels=settings.max_image_pixels,
        corrected_from=original,
    )
    return _detail(session, human)


@router.get("/v1/images/{image_id}/masks", response_model=dict[str, list[MaskDetail]])
def mask_history(
    image_id: ImageId, session: SessionDep, who: CurrentKey
) -> dict[str, list[MaskDetail]]:
    """Every mask of the image, newest first: which run produced which mask, and its review."""
    from sqlalchemy import select

    image = get_image_or_raise(session, image_id, who)
    masks = list(
        session.scalars(select(Mask).where(Mask.image_id == image.id).order_by(Mask.id.desc()))
    )
    gone = svc.superseded_ids(session, masks)
    return {"items": [svc.mask_detail(m, m.id in gone) for m in masks]}


@router.get("/v1/projects/{project_id}/masks", response_model=Page[MaskDetail])
def sync_masks(
    project_id: ProjectId,
    session: SessionDep,
    who: CurrentKey,
    updated_since: IsoDatetime | None = None,
    cursor: Cursor | None = None,
    source: Literal["human", "pseudo"] | None = None,
    review_state: Literal["pending", "accepted", "rejected"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[MaskDetail]:
    """Incremental sync for frontends: masks changed since `updated_since`, oldest first."""
    project = get_project_or_raise(session, project_id, who)
    masks, nxt = svc.sync_masks(
        session,
        project,
        updated_since=updated_since,
        cursor=cursor,
        source=source,
        review_state=review_state,
        limit=limit,
    )
    gone = svc.superseded_ids(session, masks)
    return Page[MaskDetail](
        items=[svc.mask_detail(m, m.id in gone) for m in masks], next_cursor=nxt
    )


def _regions_response(request: Request, mask: Mask) -> Response:
    etag = etag_for("regions", mask.id, int(mask.updated_at.timestamp() * 1e6))
    hit = not_modified(request, etag)
    if hit is not None:
        return hit
    body: RegionScores = svc.region_scores(mask)
    return JSONResponse(
        body.model_dump(mode="json"), headers={"ETag": etag, "Cache-Control": CACHE_CONTROL}
    )


@router.get("/v1/masks/{mask_id}/regions", response_model=RegionScores, responses=declares_304())
def mask_regions(
    mask_id: MaskId, request: Request, session: SessionDep, who: CurrentKey
) -> Response:
    return _regions_response(request, svc.get_mask_or_raise(session, mask_id, who))


@router.get("/v1/images/{image_id}/regions", response_model=RegionScores, responses=declares_304())
def image_regions(
    image_id: ImageId, request: Request, session: SessionDep, who: CurrentKey
) -> Response:
    """Region scores of the image's latest pseudo-mask."""
    image = get_image_or_raise(session, image_id, who)
    mask = latest_pseudo(session, image.id)
    if mask is None:
        raise NotFound(f"Image {image_id} has no pseudo-mask yet, so no region scores.")
    return _regions_response(request, mask)


@router.get("/v1/projects/{project_id}/suggestions", response_model=Suggestions)
def suggestions(
    project_id: ProjectId,
    session: SessionDep,
    who: CurrentKey,
    budget: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Suggestions:
    """N images to pixel-annotate next, with reasons; and which categories need masks most."""
    return suggest(session, get_project_or_raise(session, project_id, who), budget)
