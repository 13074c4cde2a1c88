"""Opaque keyset cursors: base64url of a small JSON list."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from app.errors import ValidationFailed
from app.schemas.common import DB_INT_MAX, DB_INT_MIN


def encode(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _in_range(value: Any) -> bool:
    """Integers must fit the database's (a larger one cannot be bound), floats be finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or DB_INT_MIN <= value <= DB_INT_MAX


def decode(cursor: str, types: tuple[type, ...]) -> list[Any]:
    """The cursor's values, checked against `types`; a bad cursor is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationFailed("cursor is not valid.", {"field": "cursor"}) from e
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(
            isinstance(v, t) and not isinstance(v, bool) and _in_range(v)
            for v, t in zip(values, types, strict=True)
        )
    ):
        raise ValidationFailed("cursor is not valid.", {"field": "cursor"})
    return values
