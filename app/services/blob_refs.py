"""Which blob keys rows still point at, so unreferenced blobs can be deleted."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from app.blobs import BlobStore
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
