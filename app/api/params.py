"""Integer parameters bounded to the databases' 64-bit range, declared in the OpenAPI.

An id past 2**63 - 1 overflows the database driver (a 500 before); bounded here it is a
422 that the schema announces. Shared by every route, so the bound lives in one place.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field, StrictInt

MAX_DB_INT = 2**63 - 1  # BIGINT and SQLite INTEGER; ids are never above it

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
