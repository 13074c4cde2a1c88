"""Images: upload (deduplicated by content), listing, tags, deletion."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Insert,
    Integer,
    Select,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from app.errors import NotFound
from app.imaging import ImageInfo, decode_mask, encode_png, mask_stats, probe_image
from app.schemas.image import ImageOut
from app.services.projects import ProjectRef
from app.services.scope import Principal
from app.services.tags import resolve_tags
from app.tables import Category, Image, Mask, Project, image_tags, utcnow
from app.unit_of_work import UnitOfWork

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
        raise image_not_found(image_id)
    return image


def image_not_found(image_id: int) -> NotFound:
    return NotFound(f"Image {image_id} does not exist.")


# project_id, blob_key and content_type of an image (param image_id): the lean byte route.
IMAGE_FILE = select(Image.project_id, Image.blob_key, Image.content_type).where(
    Image.id == bindparam("image_id")
)


def check_image_file(row: Any, image_id: int, who: Principal) -> Any:
    if row is None or not who.can_see(row.project_id):
        raise image_not_found(image_id)
    return row


@dataclass
class CheckedUpload:
    """An upload that passed every check, with what its rows need."""

    upload: Upload
    sha: str
    filename: str  # clean_filename of the upload's
    categories: list[Any]  # Category or CategoryRef, in class order
    info: ImageInfo
    mask_png: bytes | None = None
    mask_stats: dict[str, object] | None = None

    def image_values(self, project_id: int, blob_key: str, now: datetime) -> dict[str, Any]:
        return {
            "project_id": project_id,
            "sha256": self.sha,
            "width": self.info.width,
            "height": self.info.height,
            "blob_key": blob_key,
            "filename": self.filename,
            "content_type": self.info.content_type,
            "size_bytes": len(self.upload.data),
            "created_at": now,
            "updated_at": now,
        }

    def view(self, project_id: int, image_id: int, now: datetime) -> ImageOut:
        """The new image as the API shows it, from what was written (not read back)."""
        return ImageOut(
            id=image_id,
            project_id=project_id,
            sha256=self.sha,
            width=self.info.width,
            height=self.info.height,
            filename=self.filename,
            tags=[c.name for c in self.categories],  # resolve_tags sorts by class index
            has_human_mask=self.mask_png is not None,
            has_pseudo_mask=False,
            created_at=now,
        )


def content_sha(upload: Upload) -> str:
    return hashlib.sha256(upload.data).hexdigest()


def check_upload(
    project: Project | ProjectRef, upload: Upload, *, max_pixels: int, sha: str | None = None
) -> CheckedUpload:
    """Every check of an upload (tags, the image, the mask against it), nothing written."""
    categories = resolve_tags(project, upload.tags)  # type: ignore[arg-type]
    info = probe_image(upload.data, max_pixels)
    checked = CheckedUpload(
        upload, sha or content_sha(upload), clean_filename(upload.filename), categories, info
    )
    if upload.mask is not None:
        arr = decode_mask(
            upload.mask,
            width=info.width,
            height=info.height,
            num_classes=len(project.categories),
            max_pixels=max_pixels,
        )
        checked.mask_png = encode_png(arr)
        checked.mask_stats = mask_stats(arr)
    return checked


def upload_image(
    uow: UnitOfWork, project: Project | ProjectRef, upload: Upload, *, max_pixels: int
) -> tuple[ImageOut, bool]:
    """Store one image with its tags and optional human mask; returns (its view, created).

    The same bytes already in the project return the existing image unchanged.
    Everything is checked before anything is written. The rows go in with Core statements
    (an insert that skips a concurrent duplicate instead of a savepoint, one executemany
    for the tags) and the view is built from what was written, not read back: the ORM
    unit of work and the round trips cost about as much as the rest of an upload.
    """
    session = uow.session
    sha = content_sha(upload)
    resolve_tags(project, upload.tags)  # type: ignore[arg-type]  # unknown tags fail first
    existing = existing_view(session, project.id, sha)
    if existing is not None:
        return existing, False
    checked = check_upload(project, upload, max_pixels=max_pixels, sha=sha)
    key = uow.put_blob(upload.data)
    now = utcnow()
    values = checked.image_values(project.id, key, now)
    image_id = session.execute(_insert_image(session.get_bind().dialect.name), values).scalar()
    if image_id is None:
        # The same bytes were uploaded concurrently and that request committed first.
        existing = existing_view(session, project.id, sha)
        if existing is None:
            raise AssertionError("insert skipped for a conflict that is not there")
        return existing, False
    if checked.categories:
        session.execute(
            insert(image_tags),
            [{"image_id": image_id, "category_id": c.id} for c in checked.categories],
        )
    if checked.mask_png is not None:
        session.add(
            Mask(
                image_id=image_id,
                project_id=project.id,
                source="human",
                blob_key=uow.put_blob(checked.mask_png),
                review_state="accepted",
                stats=checked.mask_stats,
            )
        )
        session.flush()
    return checked.view(project.id, image_id, now), True


@cache
def insert_image_with_tags() -> Select:
    """PostgreSQL: the image row and its tags in one statement (so one implicit transaction
    in autocommit); its id, or no row when the project already holds these bytes.

    Parameters: the image_values columns and `category_ids` (an integer array).
    """
    table = Image.__table__
    columns = ("project_id", "sha256", "width", "height", "blob_key", "filename")
    columns += ("content_type", "size_bytes", "created_at", "updated_at")
    new = (
        postgresql.insert(table)
        .values({c: bindparam(c, type_=table.c[c].type) for c in columns})
        .on_conflict_do_nothing(index_elements=["project_id", "sha256"])
        .returning(table.c.id)
        .cte("new_image")
    )
    ids = bindparam("category_ids", type_=postgresql.ARRAY(Integer))
    category = func.unnest(ids).table_valued("category_id").render_derived("new_category_ids")
    tagged = (
        insert(image_tags)
        .from_select(
            ["image_id", "category_id"],
            select(new.c.id, category.c.category_id).select_from(new).join(category, true()),
        )
        .cte("new_tags")
    )
    return select(new.c.id).add_cte(tagged)


_IMAGE_BY_SHA = select(Image.id).where(
    Image.project_id == bindparam("project_id"), Image.sha256 == bindparam("sha")
)


def existing_view(session: Session, project_id: int, sha: str) -> ImageOut | None:
    """The project's image of these bytes (sha256), if there is one."""
    image_id = session.scalar(_IMAGE_BY_SHA, {"project_id": project_id, "sha": sha})
    if image_id is None:
        return None
    image = session.scalar(
        select(Image).where(Image.id == image_id).options(selectinload(Image.tags))
    )
    return image_view(session, image)


@cache
def _insert_image(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT (project_id, sha256) DO NOTHING RETURNING id, per dialect."""
    table = Image.__table__
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_nothing(index_elements=["project_id", "sha256"]).returning(
        table.c.id
    )


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


# What view_dicts reads of an image: a list page selects only these (no ORM entities).
IMAGE_VIEW_COLUMNS = (
    Image.id,
    Image.project_id,
    Image.sha256,
    Image.width,
    Image.height,
    Image.filename,
    Image.created_at,
)


@cache
def tags_and_masks_stmt(postgres: bool) -> CompoundSelect:
    """Tags and mask sources of a page of images (param ids), built once per dialect.

    Rows: (image_id, "tag", category name, class index) and (image_id, "mask", source, 0).
    PostgreSQL gets the ids as one array parameter: an expanding IN renders a new SQL text
    per page size, which psycopg then parses placeholder by placeholder (0.3 ms a page).
    """
    if postgres:
        ids = any_(bindparam("ids", type_=postgresql.ARRAY(Integer)))
        tag_match, mask_match = image_tags.c.image_id == ids, Mask.image_id == ids
    else:
        tag_match = image_tags.c.image_id.in_(bindparam("ids", expanding=True))
        mask_match = Mask.image_id.in_(bindparam("ids", expanding=True))
    return union_all(
        select(image_tags.c.image_id, literal("tag"), Category.name, Category.class_index)
        .join(Category, Category.id == image_tags.c.category_id)
        .where(tag_match),
        select(Mask.image_id, literal("mask"), Mask.source, literal(0))
        .where(mask_match)
        .distinct(),
    )


def _view_dict(im: Any, tags: list[str], human: bool, pseudo: bool) -> dict[str, Any]:
    return {
        "id": im.id,
        "project_id": im.project_id,
        "sha256": im.sha256,
        "width": im.width,
        "height": im.height,
        "filename": im.filename,
        "tags": tags,
        "has_human_mask": human,
        "has_pseudo_mask": pseudo,
        "created_at": im.created_at,
    }


def view_dicts(images: list[Any], tag_rows: list[Any] | None) -> list[dict[str, Any]]:
    """ImageOut fields of images (entities or image_list.page_stmt rows), with the page's
    tags_and_masks_stmt rows, or None when the rows carry their tags and flags."""
    if tag_rows is None:
        return [_view_dict(im, im.tags, im.has_human_mask, im.has_pseudo_mask) for im in images]
    tags: dict[int, list[tuple[int, str]]] = {im.id: [] for im in images}
    flags: dict[int, set[str]] = {im.id: set() for im in images}
    for image_id, kind, value, index in tag_rows:
        if kind == "tag":
            tags[image_id].append((index, value))
        else:
            flags[image_id].add(value)
    return [
        _view_dict(
            im,
            [name for _, name in sorted(tags[im.id])],
            "human" in flags[im.id],
            "pseudo" in flags[im.id],
        )
        for im in images
    ]


def image_views(session: Session, images: list[Any]) -> list[ImageOut]:
    """Wire form of images; tags and mask flags of the whole page come in one query."""
    tag_rows: list[Any] = []
    if images:
        stmt = tags_and_masks_stmt(session.get_bind().dialect.name == "postgresql")
        tag_rows = list(session.execute(stmt, {"ids": [im.id for im in images]}))
    return [ImageOut(**d) for d in view_dicts(images, tag_rows)]


def image_view(session: Session, image: Image) -> ImageOut:
    return image_views(session, [image])[0]
