"""Integer parameters bounded to the id columns' range, declared in the OpenAPI.

Ids are PostgreSQL ``integer`` columns (32-bit): a larger value fails in the database (a
500 before); bounded here it is a 422 that the schema announces. Shared by every route,
so the bound lives in one place (app.schemas.common.DB_INT_MAX).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query
from pydantic import BeforeValidator, Field, StrictInt

from app.schemas.common import DB_INT_MAX

MAX_DB_INT = DB_INT_MAX  # the id columns are 32-bit on PostgreSQL

# A path id: 1 and up (ids start at 1), 422 outside the range.
PathId = Annotated[int, Path(ge=1, le=MAX_DB_INT)]
ProjectId = PathId
ImageId = PathId
MaskId = PathId
JobId = PathId
WebhookId = PathId
KeyId = PathId

# An id in a JSON body: an integer (not `false`), in range.
BodyId = Annotated[StrictInt, Field(ge=1, le=MAX_DB_INT)]

# An offset id in a query (`?after=`): 0 and up, in range.
AfterId = Annotated[int, Query(ge=0, le=MAX_DB_INT, description="only items with a larger id")]

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
