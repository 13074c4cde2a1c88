"""Projects and categories on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

MAX_CATEGORIES = 254  # indices 1..254; 0 is background and 255 means unlabeled

# The pattern asks for a character that is neither a comma nor a space, so a name that
# strips to nothing is refused by the schema, not only after stripping. NUL never: text
# columns of PostgreSQL cannot hold it (it was a 500).
CategoryName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=200,
        pattern=r"^[^,\x00]*[^,\s\x00][^,\x00]*$",
    ),
]
Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]


class CategoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: CategoryName
    color: Color | None = None


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True,
            min_length=1,
            max_length=200,
            pattern=r"^[^\x00]*[^\s\x00][^\x00]*$",
        ),
    ]
    categories: list[CategoryCreate] = Field(default_factory=list, max_length=MAX_CATEGORIES)

    @field_validator("categories")
    @classmethod
    def _unique_names(cls, cats: list[CategoryCreate]) -> list[CategoryCreate]:
        seen: set[str] = set()
        for c in cats:
            if c.name in seen:
                raise ValueError(f"category {c.name!r} is listed twice")
            seen.add(c.name)
        return cats


class CategoryOut(BaseModel):
    id: int
    name: str
    index: int
    color: str


class ProjectOut(BaseModel):
    id: int
    name: str
    categories: list[CategoryOut]
    created_at: datetime
