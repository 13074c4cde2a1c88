"""Images: upload (deduplicated by content), listing, tags, deletion."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, literal, select, union_all
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.errors import NotFound, ValidationFailed
from app.imaging import decode_mask, encode_png, mask_stats, probe_image
from app.schemas.image import ImageOut
from app.services.scope import Principal
from app.services.tags import resolve_tags
from app.tables import Category, Image, Mask, Project, image_tags
from app.unit_of_work import UnitOfWork, open_sqlite_transaction

MAX_FILENAME = 500


@dataclass
class Upload:
    filename: str
    data: bytes
    tags: list[str]
    mask: bytes | None = None


def get_image_or_raise(
    session: Session, image_id: int, who: Principal, *, with_tags: bool = True
) -> Image:
    """The image (with its tags unless the caller needs none); 404 outside the key's scope."""
    stmt = select(Image).where(Image.id == image_id)
    if with_tags:
        stmt = stmt.options(selectinload(Image.tags))
    image = session.scalar(stmt)
    if image is None or not who.can_see(image.project_id):
        raise NotFound(f"Image {image_id} does not exist.")
    return image


def upload_image(
    uow: UnitOfWork, project: Project, upload: Upload, *, max_pixels: int
) -> tuple[Image, bool]:
    """Store one image with its tags and optional human mask; returns (image, created).

    The same bytes already in the project return the existing image unchanged.
    Everything is checked before anything is written.
    """
    session = uow.session
    sha = hashlib.sha256(upload.data).hexdigest()
    categories = resolve_tags(project, upload.tags)
    existing = session.scalar(
        select(Image)
        .where(Image.project_id == project.id, Image.sha256 == sha)
        .options(selectinload(Image.tags))
    )
    if existing is not None:
        return existing, False
    info = probe_image(upload.data, max_pixels)
    mask_png = None
    stats: dict[str, object] = {}
    if upload.mask is not None:
        arr = decode_mask(
            upload.mask,
            width=info.width,
            height=info.height,
            num_classes=len(project.categories),
            max_pixels=max_pixels,
        )
        mask_png = encode_png(arr)
        stats = mask_stats(arr)
    key = uow.put_blob(upload.data)
    image = Image(
        project_id=project.id,
        sha256=sha,
        width=info.width,
        height=info.height,
        blob_key=key,
        filename=clean_filename(upload.filename),
        content_type=info.content_type,
        size_bytes=len(upload.data),
    )
    image.tags = categories
    open_sqlite_transaction(session)  # so the savepoint's release does not commit
    try:
        with session.begin_nested():
            session.add(image)
    except IntegrityError:
        # The same bytes were uploaded concurrently and that request committed first.
        existing = session.scalar(
            select(Image)
            .where(Image.project_id == project.id, Image.sha256 == sha)
            .options(selectinload(Image.tags))
        )
        if existing is None:
            raise
        return existing, False
    if mask_png is not None:
        session.add(
            Mask(
                image_id=image.id,
                project_id=image.project_id,
                source="human",
                blob_key=uow.put_blob(mask_png),
                review_state="accepted",
                stats=stats,
            )
        )
        session.flush()
    return image, True


def clean_filename(name: str | None) -> str:
    """Keep only the last path component: a filename is metadata, never a path."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return (base or "upload")[:MAX_FILENAME]


def set_tags(session: Session, image: Image, project: Project, names: list[str]) -> Image:
    image.tags = resolve_tags(project, names)
    session.flush()
    return image


def delete_image(uow: UnitOfWork, image: Image) -> None:
    """Delete the image row and its masks; their blobs go after commit if nothing else uses them."""
    session = uow.session
    keys = [image.blob_key]
    for blob_key, conf_key in session.execute(
        select(Mask.blob_key, Mask.confidence_key).where(Mask.image_id == image.id)
    ):
        keys.append(blob_key)
        if conf_key:
            keys.append(conf_key)
    session.execute(delete(Mask).where(Mask.image_id == image.id))
    session.delete(image)
    session.flush()
    uow.release_blobs_after_commit(keys)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationFailed("cursor is not valid.", {"field": "cursor"}) from e
    if value < 0:
        raise ValidationFailed("cursor is not valid.", {"field": "cursor"})
    return value


@dataclass
class ImageFilter:
    tag: str | None = None
    has_human_mask: bool | None = None
    has_pseudo_mask: bool | None = None
    review_state: str | None = None


def _has_mask(source: str) -> Any:
    return exists().where((Mask.image_id == Image.id) & (Mask.source == source))


def _mask_driver(project_id: int, source: str, review_state: str | None, after: int) -> Any:
    """Ids of the project's images holding such a mask, in id order, from the masks index."""
    stmt = select(Mask.image_id.label("image_id")).where(
        Mask.project_id == project_id, Mask.source == source, Mask.image_id > after
    )
    if review_state is not None:
        stmt = stmt.where(Mask.review_state == review_state)
    return stmt.group_by(Mask.image_id).subquery()


def list_images(
    session: Session, project: Project, flt: ImageFilter, *, limit: int, cursor: str | None
) -> tuple[list[Image], str | None]:
    """A keyset page of the project's images in id order, and the cursor of the next page.

    A positive filter drives the query from its own index (image_tags by category, masks by
    source/review state), so a rare tag or state costs as little as a common one; the other
    filters are checked per row.
    """
    after = decode_cursor(cursor)
    stmt = select(Image).where(Image.project_id == project.id, Image.id > after)
    driven = False
    if flt.tag is not None:
        cat = next((c for c in project.categories if c.name == flt.tag), None)
        if cat is None:
            resolve_tags(project, [flt.tag])  # raises unknown_tag
            raise AssertionError
        stmt = stmt.join(
            image_tags,
            (image_tags.c.image_id == Image.id) & (image_tags.c.category_id == cat.id),
        ).where(image_tags.c.image_id > after)
        order = image_tags.c.image_id
        driven = True
    else:
        order = Image.id
    for source, wanted, state in (
        ("pseudo", True if flt.review_state is not None else None, flt.review_state),
        ("human", flt.has_human_mask, None),
        ("pseudo", flt.has_pseudo_mask, None),
    ):
        if wanted is None:
            continue
        if wanted and not driven:
            drv = _mask_driver(project.id, source, state, after)
            stmt = stmt.join(drv, drv.c.image_id == Image.id)
            order = drv.c.image_id
            driven = True
        elif wanted:
            cond = (Mask.image_id == Image.id) & (Mask.source == source)
            if state is not None:
                cond = cond & (Mask.review_state == state)
            stmt = stmt.where(exists().where(cond))
        else:
            stmt = stmt.where(~_has_mask(source))
    rows = list(session.scalars(stmt.order_by(order).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def image_views(session: Session, images: list[Image]) -> list[ImageOut]:
    """Wire form of images; tags and mask flags of the whole page come in one query."""
    ids = [im.id for im in images]
    tags: dict[int, list[tuple[int, str]]] = {i: [] for i in ids}
    flags: dict[int, set[str]] = {i: set() for i in ids}
    if ids:
        tag_rows = (
            select(image_tags.c.image_id, literal("tag"), Category.name, Category.class_index)
            .join(Category, Category.id == image_tags.c.category_id)
            .where(image_tags.c.image_id.in_(ids))
        )
        mask_rows = (
            select(Mask.image_id, literal("mask"), Mask.source, literal(0))
            .where(Mask.image_id.in_(ids))
            .distinct()
        )
        for image_id, kind, value, index in session.execute(union_all(tag_rows, mask_rows)):
            if kind == "tag":
                tags[image_id].append((index, value))
            else:
                flags[image_id].add(value)
    return [
        ImageOut(
            id=im.id,
            project_id=im.project_id,
            sha256=im.sha256,
            width=im.width,
            height=im.height,
            filename=im.filename,
            tags=[name for _, name in sorted(tags[im.id])],
            has_human_mask="human" in flags[im.id],
            has_pseudo_mask="pseudo" in flags[im.id],
            created_at=im.created_at,
        )
        for im in images
    ]


def image_view(session: Session, image: Image) -> ImageOut:
    return image_views(session, [image])[0]
