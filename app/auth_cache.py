"""A short-lived in-process cache of authenticated keys, so hot read paths skip a query.

Only successful look-ups are cached, for `ttl_s` seconds: a key revoked through this
process's API is dropped at once (`drop_key`); one revoked elsewhere (another API process,
the CLI) keeps working at most `ttl_s` in this one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.services.scope import Principal


class PrincipalCache:
    def __init__(self, ttl_s: float = 10.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, authorization: str, load: Callable[[], Principal]) -> Principal:
        hit = self.peek(authorization)
        if hit is not None:
            return hit
        principal = load()  # raises for a bad key: nothing cached
        self.put(authorization, principal)
        return principal

    def peek(self, authorization: str) -> Principal | None:
        """The cached principal while it is fresh, else None (no loading: safe on the loop)."""
        hit = self._entries.get(authorization)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, authorization: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[authorization] = (time.monotonic() + self.ttl_s, principal)

    def drop_key(self, key_id: int) -> None:
        """Forget every cached header of key `key_id` (it was just revoked)."""
        with self._lock:
            stale = [h for h, (_, p) in self._entries.items() if p.key_id == key_id]
            for header in stale:
                del self._entries[header]
