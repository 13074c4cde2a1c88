"""Re-uploads: the same bytes again merge their tags and mask into the existing image.

Chosen rule (README, "Re-uploads and masks"): new tags are added; a mask is added when the
image has no human mask, validated exactly as on a first upload; the same mask again
changes nothing; a different mask when the image has a human mask is 409 `conflict` with
what differs in `detail` (replacing a human mask is `PUT /v1/images/{id}/mask`).
Everything is checked before anything is written, so a refused re-upload leaves nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import selectinload

from app.errors import Conflict
from app.schemas.image import ImageOut
from app.services.image_views import image_view
from app.services.tags import add_image_tags, resolve_tags
from app.services.upload_checks import CheckedUpload, Upload, check_upload
from app.tables import Image, Mask
from app.unit_of_work import UnitOfWork

# The project's image of these bytes (params project_id, sha).
IMAGE_BY_SHA = select(Image.id).where(
    Image.project_id == bindparam("project_id"), Image.sha256 == bindparam("sha")
)


def merge_upload(
    uow: UnitOfWork,
    project: Any,
    image_id: int,
    upload: Upload,
    *,
    max_pixels: int,
    checked: CheckedUpload | None = None,
) -> ImageOut:
    """Merge a re-upload's tags and mask into image `image_id`; its view afterwards.

    `project` is a Project or ProjectRef; `checked` is the upload's check when the caller
    already ran it. A re-upload that brings nothing new reads only.
    """
    session = uow.session
    stmt = select(Image).where(Image.id == image_id).options(selectinload(Image.tags))
    image = session.scalar(stmt)
    if image is None:
        raise AssertionError(f"image {image_id} vanished while its bytes were re-uploaded")
    have = {c.id for c in image.tags}
    wanted = resolve_tags(project, upload.tags)
    if upload.mask is None and all(c.id in have for c in wanted):
        return image_view(session, image)
    if checked is None:
        checked = check_upload(project, upload, max_pixels=max_pixels, sha=image.sha256)
    # One writer per image at a time: two re-uploads with a mask must not both add one.
    # NO KEY UPDATE still lets a job's write-back insert masks that reference the image.
    session.execute(select(Image.id).where(Image.id == image_id).with_for_update(key_share=True))
    mask_png = checked.mask_png
    if mask_png is not None:
        human = session.execute(
            select(Mask.id, Mask.blob_key).where(Mask.image_id == image_id, Mask.source == "human")
        ).first()
        if human is not None:
            if hashlib.sha256(mask_png).hexdigest() != human.blob_key:
                raise _mask_conflict(image_id, human.id)
            mask_png = None  # the same mask again
    add_image_tags(session, image_id, [c for c in checked.categories if c.id not in have])
    if mask_png is not None:
        session.add(
            Mask(
                image_id=image_id,
                project_id=image.project_id,
                source="human",
                blob_key=uow.put_blob(mask_png),
                review_state="accepted",
                stats=checked.mask_stats,
            )
        )
    session.flush()
    session.expire(image, ["tags"])
    return image_view(session, image)


def _mask_conflict(image_id: int, human_mask_id: int) -> Conflict:
    return Conflict(
        f"Image {image_id} (the same bytes) already has a different human mask; "
        f"PUT /v1/images/{image_id}/mask replaces it.",
        {"image_id": image_id, "differs": ["mask"], "human_mask_id": human_mask_id},
    )
