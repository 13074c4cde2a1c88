"""Types shared by every resource: pages, error bodies and bounded integers."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, StrictInt

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    detail: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# The database's integer range. Every id column is `integer`, 32-bit on PostgreSQL, and
# SQLAlchemy binds ids with an explicit `::INTEGER` cast there, so a larger number fails in
# the database ("integer out of range") and a number past 64 bits already in the driver
# (OverflowError on SQLite): both must fail validation (422) first. One range for both
# backends, so the API answers alike. The one place these bounds are written: ids in
# paths and queries (app.api.params), in bodies (BodyId below), in cursors
# (app.services.cursors, app.services.image_list).
DB_INT_MIN, DB_INT_MAX = -(2**31), 2**31 - 1
ID_MIN = 1  # ids start at 1: 0 and negatives name nothing (422, as the schema declares)

BodyId = Annotated[StrictInt, Field(ge=ID_MIN, le=DB_INT_MAX)]
"""An id in a JSON body: a JSON integer only (never `false`, `"5"` or `5.0`), 1..DB_INT_MAX."""
