"""Listing a project's images: keyset pages in id order, filters, and the page as JSON.

Every page statement is built once per filter *shape* (which filters are set) with bind
parameters for the values, so the lean reader compiles it once and PostgreSQL can keep it
prepared. On PostgreSQL the API asks for the page already rendered as JSON (page_json_stmt):
one statement checks the project, resolves the tag, selects the page and renders it, so a
list request is one round trip and no per-row Python work.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from app.errors import ValidationFailed
from app.schemas.common import DB_INT_MAX
from app.services.images import IMAGE_VIEW_COLUMNS
from app.services.projects import ProjectRef
from app.services.tags import resolve_tags
from app.tables import Category, Image, ListVersion, Mask, Project, image_tags


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
    if not 0 <= value <= DB_INT_MAX:
        raise ValidationFailed("cursor is not valid.", {"field": "cursor"})
    return value


@dataclass(frozen=True)
class ImageFilter:
    tag: str | None = None
    has_human_mask: bool | None = None
    has_pseudo_mask: bool | None = None
    review_state: str | None = None

    def shape(self) -> tuple[bool, bool | None, bool | None, bool]:
        """Which filters are set (the statement's form); the values go in as parameters."""
        return (
            self.tag is not None,
            self.has_human_mask,
            self.has_pseudo_mask,
            self.review_state is not None,
        )


def _has_mask(source: str, image_id: Any = Image.id, by_state: bool = False) -> Any:
    """EXISTS a mask of `source` on the image `image_id` (a column), in the `review_state`
    parameter's state when `by_state`."""
    cond = (Mask.image_id == image_id) & (Mask.source == source)
    if by_state:
        cond = cond & (Mask.review_state == bindparam("review_state"))
    return exists().where(cond)


def _mask_driver(source: str, by_state: bool) -> Any:
    """Ids of the project's images holding such a mask, in id order, from the masks index."""
    stmt = select(Mask.image_id.label("image_id")).where(
        Mask.project_id == bindparam("project_id"),
        Mask.source == source,
        Mask.image_id > bindparam("after"),
    )
    if by_state:
        stmt = stmt.where(Mask.review_state == bindparam("review_state"))
    return stmt.group_by(Mask.image_id).subquery()


def _with_tags_and_flags(page: Any) -> Select:
    """PostgreSQL: the rows of a page subquery with each image's tags (in class order) and
    mask flags as correlated subqueries: one statement instead of two.

    They sit above the page's LIMIT on purpose: in the same SELECT as the scan, the planner
    costs them for every row the scan could return and, on a big project, picks hashed
    subplans that read every mask of the table (seen at 100,000 images: 9 ms a page).
    """
    tags = (
        select(
            func.coalesce(
                func.array_agg(aggregate_order_by(Category.name, Category.class_index)),
                postgresql.array([], type_=String),
            )
        )
        .select_from(image_tags.join(Category, Category.id == image_tags.c.category_id))
        .where(image_tags.c.image_id == page.c.id)
        .scalar_subquery()
    )
    return select(
        page,
        tags.label("tags"),
        _has_mask("human", page.c.id).label("has_human_mask"),
        _has_mask("pseudo", page.c.id).label("has_pseudo_mask"),
    ).order_by(page.c.id)


def _tag_category() -> Any:
    """The id of the project's category named by the `tag` parameter (NULL if none is)."""
    return (
        select(Category.id)
        .where(Category.project_id == bindparam("project_id"), Category.name == bindparam("tag"))
        .scalar_subquery()
    )


@cache
def page_stmt(shape: tuple[bool, bool | None, bool | None, bool], views: bool | None) -> Select:
    """A page of `n` images of a filter shape (ImageFilter.shape), built once per shape.

    Parameters: project_id, after (the last id of the previous page), n, and tag and
    review_state where the shape has them. A positive filter drives the query from its own
    index (image_tags by category, masks by source/review state), so a rare tag or state
    costs as little as a common one; the other filters are checked per row. `views`: rows
    of IMAGE_VIEW_COLUMNS instead of Image entities (True: PostgreSQL, with each image's
    tags and mask flags, see _with_tags_and_flags).
    """
    by_tag, human, pseudo, by_state = shape
    after = bindparam("after")
    stmt = select(Image) if views is None else select(*IMAGE_VIEW_COLUMNS)
    stmt = stmt.where(Image.project_id == bindparam("project_id"), Image.id > after)
    driven = False
    order: Any = Image.id
    if by_tag:
        tagged = select(image_tags.c.image_id).where(
            image_tags.c.category_id == _tag_category(), image_tags.c.image_id > after
        )
        if (human, pseudo, by_state) == (None, None, False):
            # Alone, the tag's index yields the page itself. Left to a join, the planner
            # cannot know the tag's frequency (its id is looked up in the statement) and, at
            # a million images, walked the images in id order for a rare tag (8 ms a page).
            tagged = tagged.order_by(image_tags.c.image_id).limit(bindparam("n"))
        ids = tagged.subquery("tagged")
        stmt = stmt.join(ids, ids.c.image_id == Image.id)
        order = ids.c.image_id
        driven = True
    for source, wanted, state in (
        ("pseudo", True if by_state else None, by_state),
        ("human", human, False),
        ("pseudo", pseudo, False),
    ):
        if wanted is None:
            continue
        if wanted and not driven:
            drv = _mask_driver(source, state)
            stmt = stmt.join(drv, drv.c.image_id == Image.id)
            order = drv.c.image_id
            driven = True
        elif wanted:
            stmt = stmt.where(_has_mask(source, by_state=state))
        else:
            stmt = stmt.where(~_has_mask(source))
    stmt = stmt.order_by(order).limit(bindparam("n"))
    return _with_tags_and_flags(stmt.subquery("page_images")) if views else stmt


def page_params(project_id: int, flt: ImageFilter, *, limit: int, cursor: str | None) -> dict:
    """Bind parameters of page_stmt / page_json_stmt: `limit + 1` rows to see a next page."""
    params: dict[str, Any] = {
        "project_id": project_id,
        "after": decode_cursor(cursor),
        "n": limit + 1,
        "limit": limit,
    }
    if flt.tag is not None:
        params["tag"] = flt.tag
    if flt.review_state is not None:
        params["review_state"] = flt.review_state
    return params


def list_images(
    session: Session,
    project: ProjectRef | Project,
    flt: ImageFilter,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Image], str | None]:
    """A keyset page of the project's images in id order, and the cursor of the next page."""
    if flt.tag is not None:
        resolve_tags(project, [flt.tag])  # type: ignore[arg-type]  # unknown → unknown_tag
    params = page_params(project.id, flt, limit=limit, cursor=cursor)
    rows = list(session.scalars(page_stmt(flt.shape(), None), params))
    return page_of(rows, limit)


def page_of(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page and the next page's cursor, from `limit + 1` rows."""
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def _iso_utc(ts: Any) -> ColumnElement[str]:
    """A timestamptz as pydantic writes a UTC datetime: seconds, then `.ffffff` unless the
    microseconds are 0, then `Z` (so the page reads exactly like ImageOut elsewhere)."""
    utc = func.timezone("UTC", ts)
    fraction = case(
        (cast(func.date_part("microseconds", ts), Integer) % 1000000 == 0, literal("")),
        else_=func.to_char(utc, literal('"."US')),
    )
    return func.to_char(utc, literal('YYYY-MM-DD"T"HH24:MI:SS')).concat(fraction).concat("Z")


def _list_version() -> ColumnElement[str]:
    """The project's list version, as text: its creation time (µs) and the sum of its
    change counters (app/tables/list_version.py). Equal versions, equal pages; the creation
    time tells a project from an earlier one that had the same id."""
    total = (
        select(func.coalesce(func.sum(ListVersion.version), 0))
        .where(ListVersion.project_id == Project.id)
        .scalar_subquery()
    )
    created = cast(func.extract("epoch", Project.created_at) * 1000000, BigInteger)
    return func.concat(created, literal("."), total)


LIST_VERSION = select(_list_version().label("list_version")).where(
    Project.id == bindparam("project_id")
)
"""PostgreSQL: the project's list version; no row if there is no such project."""


@cache
def page_json_stmt(shape: tuple[bool, bool | None, bool | None, bool]) -> Select:
    """PostgreSQL: one row per existing project, none otherwise, with

    - `page_json`: the page (`limit` rows of page_stmt) as the JSON array of ImageOut, as text;
    - `last_id`, `more`: the page's last id and whether a next page exists;
    - `tag_category`: the id of the category named by `tag` (NULL: unknown tag);
    - `list_version`: the project's list version in the same snapshot as the page.
    """
    rows = page_stmt(shape, True).subquery("page_rows")
    numbered = select(rows, func.row_number().over(order_by=rows.c.id).label("rn")).subquery(
        "numbered"
    )
    c = numbered.c
    shown = c.rn <= bindparam("limit")
    item = func.json_build_object(
        *("id", c.id, "project_id", c.project_id, "sha256", c.sha256),
        *("width", c.width, "height", c.height, "filename", c.filename, "tags", c.tags),
        *("has_human_mask", c.has_human_mask, "has_pseudo_mask", c.has_pseudo_mask),
        *("created_at", _iso_utc(c.created_at)),
    )
    page = select(
        cast(
            func.coalesce(
                func.json_agg(aggregate_order_by(item, c.id)).filter(shown),
                literal("[]").cast(postgresql.JSON),
            ),
            Text,
        ).label("page_json"),
        func.max(c.id).filter(shown).label("last_id"),
        (func.count() > bindparam("limit")).label("more"),
    ).subquery("page")
    tag_category = _tag_category() if shape[0] else null()
    return (
        select(
            Project.id,
            tag_category.label("tag_category"),
            page.c.page_json,
            page.c.last_id,
            page.c.more,
            _list_version().label("list_version"),
        )
        .select_from(Project)
        .join(page, true())
        .where(Project.id == bindparam("project_id"))
    )
