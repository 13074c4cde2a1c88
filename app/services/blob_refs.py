"""Which blob keys rows still point at, so unreferenced blobs can be deleted."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from app.blobs import BlobStore, LocalBlobStore
from app.tables import Image, Job, JobCheckpoint, Mask, ModelVersion

_KEY_COLUMNS = (
    Image.blob_key,
    Mask.blob_key,
    Mask.confidence_key,
    ModelVersion.blob_key,
    JobCheckpoint.blob_key,
    Job.result_key,
)


def referenced(session: Session, keys: Iterable[str]) -> set[str]:
    """The subset of `keys` that some row references."""
    wanted = list(set(keys))
    if not wanted:
        return set()
    stmt = union_all(*(select(col.label("k")).where(col.in_(wanted)) for col in _KEY_COLUMNS))
    return {row[0] for row in session.execute(stmt)}


def delete_unreferenced(session: Session, store: BlobStore, keys: Iterable[str]) -> list[str]:
    """Delete those of `keys` that no committed row references; returns the deleted keys."""
    candidates = set(keys)
    gone = sorted(candidates - referenced(session, candidates))
    for key in gone:
        store.delete(key)
    return gone


# Blobs younger than this are never swept: an upload writes its blob before the row that
# references it commits (seconds at most; a re-put of an existing blob refreshes its mtime).
SWEEP_GRACE_S = 3600.0


@dataclass
class SweepResult:
    examined: int
    deleted: list[str]
    tmp_removed: int


def sweep_orphans(
    session: Session,
    store: LocalBlobStore,
    *,
    older_than_s: float = SWEEP_GRACE_S,
    batch: int = 1000,
    now: float | None = None,
) -> SweepResult:
    """Delete every blob that no row references and that is older than `older_than_s`,
    and temp files as old: what a process killed between its blob write and its commit
    (or a rollback that could not reach the database) left behind."""
    cutoff = (time.time() if now is None else now) - older_than_s
    old = [key for key, mtime in store.keys_with_mtime() if mtime < cutoff]
    deleted: list[str] = []
    for i in range(0, len(old), batch):
        deleted += delete_unreferenced(session, store, old[i : i + batch])
    return SweepResult(len(old), deleted, store.remove_stale_tmp(cutoff))
