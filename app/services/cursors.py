"""Opaque keyset cursors: base64url of a small JSON list."""

from __future__ import annotations

import base64
import json
from typing import Any

from app.errors import ValidationFailed


def encode(*values: Any) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


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
            isinstance(v, t) and not isinstance(v, bool) for v, t in zip(values, types, strict=True)
        )
    ):
        raise ValidationFailed("cursor is not valid.", {"field": "cursor"})
    return values
