"""Parsing tag lists and resolving tag names to a project's categories."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import UnknownTag, ValidationFailed
from app.tables import Category, Project, image_tags


def parse_tags(raw: str | None) -> list[str]:
    """Tags from a form field: a JSON list of names, or comma-separated names."""
    if raw is None:
        return []
    text = raw.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValidationFailed("tags is not valid JSON.", {"field": "tags"}) from e
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationFailed("tags must be a list of category names.", {"field": "tags"})
        names = value
    else:
        names = text.split(",")
    return [n.strip() for n in names if n.strip()]


def resolve_tags(project: Project, names: list[str]) -> list[Category]:
    """The categories named by `names` (duplicates collapse); unknown names → unknown_tag."""
    by_name = {c.name: c for c in project.categories}
    unknown = sorted({n for n in names if n not in by_name})
    if unknown:
        raise UnknownTag(
            f"The project has no categor{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(map(repr, unknown))}.",
            {"unknown": unknown, "known": sorted(by_name)},
        )
    seen: dict[str, Category] = {}
    for n in names:
        seen.setdefault(n, by_name[n])
    return sorted(seen.values(), key=lambda c: c.class_index)


def painted_categories(project: Any, mask: np.ndarray) -> list[Any]:
    """The project's categories a class-index mask paints (neither background nor unlabeled).

    A mask that paints a category the image is not tagged with adds that tag (README,
    "Re-uploads and masks"): the pixels say the object is there, and a tag list that says
    otherwise would teach the tag head the opposite of what the mask teaches the segmenter.
    """
    by_index = {c.class_index: c for c in project.categories}
    return [by_index[int(i)] for i in np.unique(mask) if int(i) in by_index]


def union_categories(*groups: Iterable[Any]) -> list[Any]:
    """Categories (Category or CategoryRef) of every group, once each, in class order."""
    seen: dict[int, Any] = {}
    for group in groups:
        for c in group:
            seen.setdefault(c.class_index, c)
    return [seen[i] for i in sorted(seen)]


def add_image_tags(session: Session, image_id: int, categories: Iterable[Any]) -> None:
    """Tag the image with `categories` too; a tag it already has (maybe added by a
    concurrent request) is skipped, not an error."""
    rows = [{"image_id": image_id, "category_id": c.id} for c in categories]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(image_tags).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(image_tags).on_conflict_do_nothing()
    else:
        stmt = insert(image_tags)
    session.execute(stmt, rows)
