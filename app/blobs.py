"""Content-addressed blob store on the local disk.

Keys are the sha256 hex of the content; a key is validated before it becomes a path, so no
user input ever names a file. Writes go to a temp file that is fsynced and renamed into
place, so a crash never leaves a half-written blob under a valid key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"[0-9a-f]{64}")  # used with fullmatch: "$" would accept a trailing "\n"


class BlobStore(Protocol):
    def put(self, data: bytes) -> tuple[str, bool]: ...
    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, bool]: ...
    def get(self, key: str) -> bytes: ...
    def path(self, key: str) -> Path: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


class BlobNotFound(KeyError):
    """The key names no stored blob."""


class LocalBlobStore:
    """Blobs under `root/ab/cd/<sha256>`; `put` returns (key, created)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a blob key: {key!r}")
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes) -> tuple[str, bool]:
        return self.put_chunks([data])

    def put_chunks(self, chunks: Iterable[bytes]) -> tuple[str, bool]:
        """Store the concatenated chunks; hashing happens while writing (one pass)."""
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    digest.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            key = digest.hexdigest()
            dest = self.path(key)
            if dest.exists():
                os.unlink(tmp_name)
                # A fresh mtime: the orphan sweep spares blobs younger than its grace
                # period, and a row about to reference this one may not be committed yet.
                with contextlib.suppress(FileNotFoundError):
                    os.utime(dest)
                return key, False
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, dest)
            return key, True
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError as e:
            raise BlobNotFound(key) from e

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

    def keys_with_mtime(self) -> list[tuple[str, float]]:
        """(key, modification time) of every stored blob."""
        out = []
        for p in self.root.glob("??/??/*"):
            if _KEY.fullmatch(p.name):
                with contextlib.suppress(FileNotFoundError):
                    out.append((p.name, p.stat().st_mtime))
        return out

    def remove_stale_tmp(self, older_than: float) -> int:
        """Delete temp files (writes a killed process left half done) last touched before
        `older_than` (a time.time() value); returns how many."""
        removed = 0
        for p in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.stat().st_mtime < older_than:
                    p.unlink()
                    removed += 1
        return removed

    def keys(self) -> list[str]:
        """Every stored key (for tests and garbage collection)."""
        return sorted(
            p.name for p in self.root.glob("??/??/*") if p.is_file() and _KEY.fullmatch(p.name)
        )
