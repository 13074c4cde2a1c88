"""Human masks in, best/human/pseudo masks out."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.imaging import decode_mask, encode_png, mask_stats
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
    """Validate a class-index PNG and make it the image's human mask (replacing any)."""
    arr = decode_mask(
        data,
        width=image.width,
        height=image.height,
        num_classes=len(project.categories),
        max_pixels=max_pixels,
    )
    key = uow.put_blob(encode_png(arr))
    session = uow.session
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


def find_mask(session: Session, image: Image, source: MaskSource) -> Mask:
    """`best` = the human mask, else the accepted pseudo-mask, else the latest pseudo-mask.

    One query: the image's few masks ordered by that preference.
    """
    stmt = select(Mask).where(Mask.image_id == image.id)
    if source != "best":
        stmt = stmt.where(Mask.source == source)
    preference = (
        case((Mask.source == "human", 0), else_=1),
        case((Mask.review_state == "accepted", 0), else_=1),
        Mask.id.desc(),
    )
    mask = session.scalar(stmt.order_by(*preference).limit(1))
    if mask is None:
        what = {"best": "mask", "human": "human mask", "pseudo": "pseudo-mask"}[source]
        hint = "" if source == "human" else ": upload a human mask or run a labeling job"
        raise NotFound(f"Image {image.id} has no {what} yet{hint}.")
    return mask
