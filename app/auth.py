"""API key generation, hashing and role ordering."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "t2m_"
_ROLE_RANK = {"viewer": 0, "annotator": 1, "admin": 2}


def generate_key() -> str:
    """A new secret key; shown once, never stored."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """sha256 of the key: keys are 256-bit random, so a fast hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def role_at_least(role: str, needed: str) -> bool:
    return _ROLE_RANK.get(role, -1) >= _ROLE_RANK[needed]
