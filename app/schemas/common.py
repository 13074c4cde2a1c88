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


# The database's integer range (PostgreSQL bigint, SQLite INTEGER): a larger id or number
# cannot be bound to a query (OverflowError), so it must fail validation (422) first.
DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1

DbInt = Annotated[int, Field(ge=DB_INT_MIN, le=DB_INT_MAX)]
"""Every integer path id and query parameter; narrow it further with Query(ge=, le=)."""

StrictDbInt = Annotated[DbInt, Strict()]
"""Integer JSON body fields: a JSON integer only, never `false`, `"5"` or `5.0`."""
