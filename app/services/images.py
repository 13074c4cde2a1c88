"""Images: upload (deduplicated by content), listing, tags, deletion."""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Insert, Integer, Select, bindparam, delete, func, insert, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from app.errors import Conflict, NotFound
from app.schemas.image import ImageOut
from app.services.image_views import (  # noqa: F401  (re-exported: the routes' one import)
    IMAGE_VIEW_COLUMNS,
    image_view,
    image_views,
    tags_and_masks_stmt,
    view_dicts,
)
from app.services.projects import ProjectRef
from app.services.reupload import IMAGE_BY_SHA, merge_upload
from app.services.scope import Principal
from app.services.tags import resolve_tags
from app.services.upload_checks import (  # noqa: F401  (re-exported)
    MAX_FILENAME,
    CheckedUpload,
    Upload,
    check_upload,
    clean_filename,
    content_sha,
)
from app.tables import Image, Mask, Project, image_tags, utcnow
from app.unit_of_work import UnitOfWork


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


def upload_image(
    uow: UnitOfWork, project: Project | ProjectRef, upload: Upload, *, max_pixels: int
) -> tuple[ImageOut, bool]:
    """Store one image with its tags and optional human mask; returns (its view, created).

    The same bytes already in the project return the existing image, with the upload's
    tags and mask merged into it (app/services/reupload.py). Everything is checked before
    anything is written. The rows go in with Core statements
    (an insert that skips a concurrent duplicate instead of a savepoint, one executemany
    for the tags) and the view is built from what was written, not read back: the ORM
    unit of work and the round trips cost about as much as the rest of an upload.
    """
    session = uow.session
    sha = content_sha(upload)
    resolve_tags(project, upload.tags)  # type: ignore[arg-type]  # unknown tags fail first
    existing = merge_existing(uow, project, upload, max_pixels=max_pixels, sha=sha)
    if existing is not None:
        return existing, False
    checked = check_upload(project, upload, max_pixels=max_pixels, sha=sha)
    key = uow.put_blob(upload.data)
    now = utcnow()
    values = checked.image_values(project.id, key, now)
    image_id = session.execute(_insert_image(session.get_bind().dialect.name), values).scalar()
    if image_id is None:
        # The same bytes were uploaded concurrently and that request committed first.
        existing = merge_existing(
            uow, project, upload, max_pixels=max_pixels, sha=sha, checked=checked
        )
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


def merge_existing(
    uow: UnitOfWork,
    project: Project | ProjectRef,
    upload: Upload,
    *,
    max_pixels: int,
    sha: str,
    checked: CheckedUpload | None = None,
) -> ImageOut | None:
    """The project's image of these bytes with the upload merged into it; None if none."""
    image_id = uow.session.scalar(IMAGE_BY_SHA, {"project_id": project.id, "sha": sha})
    if image_id is None:
        return None
    return merge_upload(uow, project, image_id, upload, max_pixels=max_pixels, checked=checked)


@cache
def _insert_image(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT (project_id, sha256) DO NOTHING RETURNING id, per dialect."""
    table = Image.__table__
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_nothing(index_elements=["project_id", "sha256"]).returning(
        table.c.id
    )


def set_tags(session: Session, image: Image, project: Project, names: list[str]) -> Image:
    """Replace the image's tags; 409 if that drops a category its human mask paints.

    A mask that paints an untagged category adds the tag (app/services/tags.py); taking
    the tag away again here would leave the mask and the tags disagreeing, which is the
    state that rule exists to prevent. Correct the mask first, then the tags.
    """
    categories = resolve_tags(project, names)
    painted = human_mask_classes(session, image.id)
    kept = {c.class_index for c in categories}
    dropped = [c for c in project.categories if c.class_index in painted - kept]
    if dropped:
        raise Conflict(
            "The image's human mask paints "
            + ", ".join(repr(c.name) for c in dropped)
            + "; a tag its mask paints cannot be removed (correct the mask first).",
            {"painted": sorted(c.name for c in dropped)},
        )
    image.tags = categories
    session.flush()
    return image


def human_mask_classes(session: Session, image_id: int) -> set[int]:
    """Class indices the image's latest human mask paints (from its stored pixel counts)."""
    stats = session.scalar(
        select(Mask.stats)
        .where(Mask.image_id == image_id, Mask.source == "human")
        .order_by(Mask.id.desc())
        .limit(1)
    )
    pixels = (stats or {}).get("class_pixels", {})
    return {int(k) for k, n in pixels.items() if int(n) > 0}


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
