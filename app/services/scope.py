"""Who is asking: the authenticated key, and what it may see."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth import role_at_least
from app.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    key_id: int
    role: str
    project_id: int | None  # None: every project
    name: str

    def can_see(self, project_id: int) -> bool:
        return self.project_id is None or self.project_id == project_id

    def require(self, role: str) -> None:
        if not role_at_least(self.role, role):
            raise Forbidden(f"This needs the {role} role; the key has {self.role}.")


SYSTEM = Principal(key_id=0, role="admin", project_id=None, name="system")
