"""Label Studio annotations in: brush regions → a class-index mask → a human mask, once.

An annotation version (its id and `updated_at`) is taken in at most once per project: the
row in label_studio_annotations is written in the same transaction as the mask, under a
unique key, so a webhook Label Studio sends again finds it (or loses the race on the key
and writes nothing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import MaskSizeMismatch, UnknownTag, ValidationFailed
from app.imaging import encode_png
from app.services.images import upload_image
from app.services.masks import MASK_PREFERENCE, set_human_mask
from app.services.upload_checks import Upload
from app.tables import Image, LabelStudioAnnotation, Mask, Project
from app.unit_of_work import Savepoint, UnitOfWork
from worker.export_formats.brush_rle import RleError, decode_rle
from worker.export_formats.label_studio import FROM_NAME

log = logging.getLogger(__name__)
PAINTED = 128  # alpha from which a brush pixel counts as painted (edges are anti-aliased)


@dataclass(frozen=True)
class AnnotationVersion:
    """What identifies one version of a Label Studio annotation, and what it says."""

    annotation_id: int
    updated_at: str
    task_id: int | None
    result: list[Any]
    exported_mask_id: int | None  # task.meta.mask_id of a task from our export


def parse_annotation(payload: dict[str, Any]) -> AnnotationVersion:
    """The annotation of an ANNOTATION_CREATED/UPDATED webhook body, or 422 saying what lacks."""
    ann, task = payload.get("annotation"), payload.get("task")
    if not isinstance(ann, dict) or not isinstance(task, dict):
        raise ValidationFailed("The webhook has no 'annotation' and 'task' objects.")
    ann_id, result = ann.get("id"), ann.get("result")
    if not isinstance(ann_id, int) or not isinstance(result, list):
        raise ValidationFailed("The annotation needs an integer 'id' and a 'result' list.")
    updated = ann.get("updated_at") or ann.get("created_at")
    if not isinstance(updated, str) or not updated:
        raise ValidationFailed("The annotation has no 'updated_at'.")
    meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
    exported = meta.get("mask_id")
    task_id = task.get("id")
    return AnnotationVersion(
        ann_id,
        updated,
        task_id if isinstance(task_id, int) else None,
        result,
        exported if isinstance(exported, int) else None,
    )


def annotation_mask(
    result: list[Any], class_of: dict[str, int], width: int, height: int
) -> np.ndarray:
    """The class-index mask (0 where nothing is painted) of an annotation's brush regions.

    Regions of other kinds or other controls are left out (logged); a label that is not a
    category is 422 `unknown_tag`, a region of another size 422 `mask_size_mismatch`.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    unknown: list[str] = []
    for region in result:
        if not isinstance(region, dict):
            raise ValidationFailed("An annotation result item is not an object.")
        value = region.get("value") if isinstance(region.get("value"), dict) else {}
        if region.get("type") != "brushlabels" or region.get("from_name") != FROM_NAME:
            log.info(
                "label studio: skipped a %r region of %r",
                region.get("type"),
                region.get("from_name"),
            )
            continue
        labels = value.get("brushlabels") or []
        rle = value.get("rle")
        if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
            raise ValidationFailed("A brush region's 'brushlabels' is not a list of names.")
        if not isinstance(rle, list):
            raise ValidationFailed("A brush region has no 'rle' list (format 'rle').")
        unknown += [n for n in labels if n not in class_of]
        if unknown or not labels:
            continue
        size = (region.get("original_width"), region.get("original_height"))
        if size != (width, height):
            raise MaskSizeMismatch(
                f"A brush region is {size[0]}x{size[1]}; the image is {width}x{height}.",
                {"region": region.get("id")},
            )
        try:
            rgba = decode_rle(rle, max_values=width * height * 4)
        except RleError as e:
            raise ValidationFailed(f"A brush region's RLE is not valid: {e}.") from e
        if rgba.size != width * height * 4:
            raise ValidationFailed("A brush region's RLE does not cover the image.")
        painted = rgba.reshape(height, width, 4)[..., 3] >= PAINTED
        mask[painted] = class_of[labels[-1]]
    if unknown:
        raise UnknownTag(
            f"Labels that are not categories of this project: {sorted(set(unknown))}.",
            {"labels": sorted(set(unknown))},
        )
    return mask


def already_taken(uow: UnitOfWork, project_id: int, v: AnnotationVersion) -> int | None:
    """The mask id (or 0) an earlier delivery of this annotation version wrote, else None."""
    row = uow.session.execute(
        select(LabelStudioAnnotation.mask_id).where(
            LabelStudioAnnotation.project_id == project_id,
            LabelStudioAnnotation.ls_annotation_id == v.annotation_id,
            LabelStudioAnnotation.ls_updated_at == v.updated_at,
        )
    ).first()
    return None if row is None else (row.mask_id or 0)


def _corrected(uow: UnitOfWork, image: Image, v: AnnotationVersion) -> Mask | None:
    """The pseudo-mask a person corrected: the one our export showed, else the image's best."""
    session = uow.session
    if v.exported_mask_id is not None:
        shown = session.get(Mask, v.exported_mask_id)
        if shown is not None and shown.image_id == image.id and shown.source == "pseudo":
            return shown
    best = session.scalar(
        select(Mask).where(Mask.image_id == image.id).order_by(*MASK_PREFERENCE).limit(1)
    )
    return best if best is not None and best.source == "pseudo" else None


def _claim(uow: UnitOfWork, project_id: int, v: AnnotationVersion) -> LabelStudioAnnotation | None:
    """Insert this version's key first: None when another delivery holds it already.

    On PostgreSQL a concurrent delivery's uncommitted insert makes this one wait, then
    fail on the key once that one commits; nothing else has been written by then.
    """
    row = LabelStudioAnnotation(
        project_id=project_id,
        ls_annotation_id=v.annotation_id,
        ls_updated_at=v.updated_at,
        ls_task_id=v.task_id,
    )
    try:
        with Savepoint(uow):
            uow.session.add(row)
            uow.session.flush()
    except IntegrityError:
        return None
    return row


def take_in(
    uow: UnitOfWork,
    project: Project,
    v: AnnotationVersion,
    *,
    image: Image | None,
    new_image: tuple[str, bytes] | None,
    mask: np.ndarray,
    max_pixels: int,
) -> tuple[int, int] | None:
    """Write the annotation as the image's human mask (a new image: with it); returns
    (image id, mask id), or None when an earlier delivery took it (nothing written)."""
    claim = _claim(uow, project.id, v)
    if claim is None:
        return None
    session = uow.session
    if image is not None:
        corrected = _corrected(uow, image, v)
        human = set_human_mask(
            uow, image, project, encode_png(mask), max_pixels=max_pixels, corrected_from=corrected
        )
        image_id, mask_id = image.id, human.id
    else:
        assert new_image is not None
        filename, data = new_image
        names = {c.class_index: c.name for c in project.categories}
        tags = [names[int(i)] for i in np.unique(mask) if int(i) in names]
        view, _ = upload_image(
            uow, project, Upload(filename, data, tags, encode_png(mask)), max_pixels=max_pixels
        )
        image_id = view.id
        mask_id = session.scalar(
            select(Mask.id).where(Mask.image_id == image_id, Mask.source == "human")
        )
    claim.image_id, claim.mask_id = image_id, mask_id
    session.flush()
    return image_id, int(mask_id or 0)
