"""Parsing tag lists and resolving tag names to a project's categories."""

from __future__ import annotations

import json

from app.errors import UnknownTag, ValidationFailed
from app.tables import Category, Project


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
