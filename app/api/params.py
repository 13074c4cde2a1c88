"""Integer parameters bounded to the id columns' range, declared in the OpenAPI.

Ids are PostgreSQL ``integer`` columns (32-bit): a larger value fails in the database (a
500 before); bounded here it is a 422 that the schema announces. Shared by every route;
the bounds themselves are app.schemas.common's (ID_MIN, DB_INT_MAX), also behind BodyId.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BeforeValidator

from app.schemas.common import DB_INT_MAX, ID_MIN

# A path id: 1..DB_INT_MAX (ids start at 1), 422 outside the range.
PathId = Annotated[int, Path(ge=ID_MIN, le=DB_INT_MAX)]
ProjectId = PathId
ImageId = PathId
MaskId = PathId
JobId = PathId
WebhookId = PathId
KeyId = PathId

# An offset id in a query (`?after=`): 0 (from the start) and up, in range.
AfterId = Annotated[int, Query(ge=0, le=DB_INT_MAX, description="only items with a larger id")]

# An opaque keyset cursor: only a `next_cursor` the API returned is valid (422 otherwise);
# empty is the first page, as it always was.
Cursor = Annotated[
    str,
    Query(
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="a next_cursor from the previous page, passed back unchanged",
    ),
]


def _not_a_number(value: object) -> object:
    """A timestamp in ISO 8601 only: pydantic would also read `0.5` as Unix seconds, which
    the schema (`format: date-time`) does not allow."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
