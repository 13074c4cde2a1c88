"""Human masks in, best/human/pseudo masks out."""

from __future__ import annotations

from functools import cache
from typing import Any, Literal

from sqlalchemy import Select, and_, bindparam, case, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.imaging import decode_mask, encode_png, mask_stats
from app.services.images import image_not_found
from app.services.scope import Principal
from app.services.tags import add_image_tags, painted_categories
from app.tables import Image, Mask, Project
from app.unit_of_work import UnitOfWork

MaskSource = Literal["best", "human", "pseudo"]


def set_human_mask(
    uow: UnitOfWork,
    image: Image,
    project: Project,
    data: bytes,
    *,
    max_pixels: int,
    corrected_from: Mask | None = None,
) -> Mask:
    """Validate a class-index PNG and make it the image's human mask (replacing any).

    Categories the mask paints that the image is not tagged with become its tags too
    (app/services/tags.painted_categories says why).
    """
    arr = decode_mask(
        data,
        width=image.width,
        height=image.height,
        num_classes=len(project.categories),
        max_pixels=max_pixels,
    )
    key = uow.put_blob(encode_png(arr))
    session = uow.session
    have = {c.id for c in image.tags}
    add_image_tags(
        session, image.id, [c for c in painted_categories(project, arr) if c.id not in have]
    )
    session.expire(image, ["tags"])
    old = session.scalars(
        select(Mask).where(Mask.image_id == image.id, Mask.source == "human")
    ).all()
    for m in old:
        uow.release_blobs_after_commit([m.blob_key])
        session.delete(m)
    session.flush()
    mask = Mask(
        image_id=image.id,
        project_id=image.project_id,
        source="human",
        blob_key=key,
        review_state="accepted",
        stats=mask_stats(arr),
        corrected_from_id=corrected_from.id if corrected_from else None,
    )
    session.add(mask)
    session.flush()
    return mask


def latest_pseudo(session: Session, image_id: int, *, accepted_only: bool = False) -> Mask | None:
    stmt = select(Mask).where(Mask.image_id == image_id, Mask.source == "pseudo")
    if accepted_only:
        stmt = stmt.where(Mask.review_state == "accepted")
    return session.scalar(stmt.order_by(Mask.id.desc()).limit(1))


# `best`: the human mask, else the accepted pseudo-mask, else the latest pseudo-mask.
MASK_PREFERENCE = (
    case((Mask.source == "human", 0), else_=1),
    case((Mask.review_state == "accepted", 0), else_=1),
    Mask.id.desc(),
)


def _no_mask(image_id: int, source: MaskSource) -> NotFound:
    what = {"best": "mask", "human": "human mask", "pseudo": "pseudo-mask"}[source]
    hint = "" if source == "human" else ": upload a human mask or run a labeling job"
    return NotFound(f"Image {image_id} has no {what} yet{hint}.")


@cache
def image_mask_stmt(source: MaskSource) -> Select:
    """The image and its `source` mask (param image_id), in one query for the lean routes.

    Columns: project_id, width, height, image_blob_key, mask_id, source, blob_key. Built
    once per source: building and cache-keying a statement costs more CPU than running it.
    """
    on = Mask.image_id == Image.id
    if source != "best":
        on = and_(on, Mask.source == source)
    return (
        select(
            Image.project_id,
            Image.width,
            Image.height,
            Image.blob_key.label("image_blob_key"),
            Mask.id.label("mask_id"),
            Mask.source,
            Mask.blob_key,
        )
        .select_from(Image)
        .outerjoin(Mask, on)
        .where(Image.id == bindparam("image_id"))
        .order_by(*MASK_PREFERENCE)
        .limit(1)
    )


def check_image_mask(row: Any, image_id: int, who: Principal, source: MaskSource) -> Any:
    """The image_mask_stmt row; 404 for a missing or out-of-scope image, or no such mask."""
    if row is None or not who.can_see(row.project_id):
        raise image_not_found(image_id)
    if row.mask_id is None:
        raise _no_mask(image_id, source)
    return row


# mask_id and confidence_key of the image's latest pseudo-mask (param image_id).
LATEST_CONFIDENCE = (
    select(Image.project_id, Mask.id.label("mask_id"), Mask.confidence_key)
    .select_from(Image)
    .outerjoin(Mask, and_(Mask.image_id == Image.id, Mask.source == "pseudo"))
    .where(Image.id == bindparam("image_id"))
    .order_by(Mask.id.desc())
    .limit(1)
)


def check_confidence(row: Any, image_id: int, who: Principal) -> Any:
    if row is None or not who.can_see(row.project_id):
        raise image_not_found(image_id)
    if row.mask_id is None or row.confidence_key is None:
        raise NotFound(f"Image {image_id} has no pseudo-mask yet, so no confidence map.")
    return row
