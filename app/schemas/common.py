"""Types shared by every resource: pages, error bodies and bounded integers."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, Strict

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
# backends, so the API answers alike.
DB_INT_MIN, DB_INT_MAX = -(2**31), 2**31 - 1

DbInt = Annotated[int, Field(ge=DB_INT_MIN, le=DB_INT_MAX)]
"""Every integer path id and query parameter; narrow it further with Query(ge=, le=)."""

StrictDbInt = Annotated[DbInt, Strict()]
"""Integer JSON body fields: a JSON integer only, never `false`, `"5"` or `5.0`."""
