"""Reviewing pseudo-masks: the queue, decisions, corrections, sync and region scores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select, tuple_
from sqlalchemy.orm import Session, aliased, selectinload

from app.errors import Conflict, NotFound
from app.schemas.review import MaskDetail, Region, RegionScores
from app.services import cursors
from app.services.scope import Principal
from app.tables import Image, Mask, Project, utcnow

WEAKEST_REGIONS = 3


def get_mask_or_raise(session: Session, mask_id: int, who: Principal) -> Mask:
    mask = session.get(Mask, mask_id)
    if mask is None or not who.can_see(mask.project_id):
        raise NotFound(f"Mask {mask_id} does not exist.")
    return mask


def _superseded_clause(m: type[Mask]) -> Any:
    """A pseudo-mask is superseded by a newer run's pseudo-mask or by a human mask."""
    other = aliased(Mask)
    return exists().where(
        other.image_id == m.image_id,
        or_(other.source == "human", and_(other.source == "pseudo", other.id > m.id)),
    )


def is_superseded(session: Session, mask: Mask) -> bool:
    if mask.source != "pseudo":
        return False
    return bool(session.scalar(select(_superseded_clause(Mask)).where(Mask.id == mask.id)))


def mask_detail(mask: Mask, superseded: bool) -> MaskDetail:
    return MaskDetail(
        id=mask.id,
        image_id=mask.image_id,
        project_id=mask.project_id,
        source=mask.source,  # type: ignore[arg-type]
        review_state=mask.review_state,  # type: ignore[arg-type]
        job_id=mask.job_id,
        model_version_id=mask.model_version_id,
        mean_confidence=mask.mean_confidence,
        reviewer=mask.reviewer,
        reviewed_at=mask.reviewed_at,
        review_comment=mask.review_comment,
        corrected_from_id=mask.corrected_from_id,
        superseded=superseded,
        created_at=mask.created_at,
        updated_at=mask.updated_at,
    )


def require_current(session: Session, mask: Mask) -> None:
    """409 when a newer run's pseudo-mask or a human mask superseded `mask`."""
    if is_superseded(session, mask):
        raise Conflict(
            f"Mask {mask.id} was superseded by a newer run or a human mask; review the newer one.",
            {"mask_id": mask.id},
        )


def review_mask(
    session: Session, mask: Mask, decision: str, comment: str | None, who: Principal
) -> Mask:
    """Accept or reject a pseudo-mask; a superseded one is a 409 (review the newer one)."""
    if mask.source != "pseudo":
        raise Conflict(f"Mask {mask.id} is a human mask; only pseudo-masks are reviewed.")
    require_current(session, mask)
    mask.review_state = "accepted" if decision == "accept" else "rejected"
    mask.reviewer = who.name
    mask.reviewed_at = utcnow()
    mask.review_comment = comment
    session.flush()
    _notify(session, mask, decision)
    return mask


def _notify(session: Session, mask: Mask, decision: str) -> None:
    from app.services.webhooks import enqueue_event

    enqueue_event(
        session,
        mask.project_id,
        "mask.reviewed",
        {
            "mask_id": mask.id,
            "image_id": mask.image_id,
            "decision": decision,
            "review_state": mask.review_state,
            "reviewer": mask.reviewer,
            "job_id": mask.job_id,
        },
    )


def weakest(regions: list[dict[str, Any]] | None, n: int = WEAKEST_REGIONS) -> list[Region]:
    items = [
        Region(id=int(r["id"]), bbox=[int(v) for v in r["bbox"]], score=float(r["score"]))
        for r in (regions or [])
    ]
    return sorted(items, key=lambda r: r.score)[:n]


def region_scores(mask: Mask) -> RegionScores:
    regions = weakest(mask.region_scores, n=len(mask.region_scores or []))
    return RegionScores(
        mask_id=mask.id,
        image_id=mask.image_id,
        regions=sorted(regions, key=lambda r: r.id),
        weakest=regions[:WEAKEST_REGIONS],
    )


def review_queue(
    session: Session, project: Project, *, limit: int, cursor: str | None
) -> tuple[list[tuple[Mask, Image]], str | None]:
    """Pending, current pseudo-masks of the project, lowest mean confidence first."""
    stmt = (
        select(Mask, Image)
        .join(Image, Image.id == Mask.image_id)
        .where(
            Mask.project_id == project.id,
            Mask.source == "pseudo",
            Mask.review_state == "pending",
            Mask.mean_confidence.is_not(None),
            ~_superseded_clause(Mask),
        )
    )
    if cursor:
        conf, last_id = cursors.decode(cursor, (float, int))
        stmt = stmt.where(tuple_(Mask.mean_confidence, Mask.id) > tuple_(conf, last_id))
    rows = [
        (m, im)
        for m, im in session.execute(
            stmt.order_by(Mask.mean_confidence, Mask.id)
            .limit(limit + 1)
            .options(selectinload(Image.tags))
        )
    ]
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        nxt = cursors.encode(float(last.mean_confidence or 0.0), last.id)
    return rows[:limit], nxt


def sync_masks(
    session: Session,
    project: Project,
    *,
    updated_since: datetime | None,
    cursor: str | None,
    source: str | None,
    review_state: str | None,
    limit: int,
) -> tuple[list[Mask], str | None]:
    """Masks changed since a time, oldest change first (keyset on updated_at, id)."""
    stmt = select(Mask).where(Mask.project_id == project.id)
    if updated_since is not None:
        stmt = stmt.where(Mask.updated_at > updated_since)
    if source is not None:
        stmt = stmt.where(Mask.source == source)
    if review_state is not None:
        stmt = stmt.where(Mask.review_state == review_state)
    if cursor:
        ts, last_id = cursors.decode(cursor, (str, int))
        try:
            after = datetime.fromisoformat(ts)
        except ValueError:
            from app.errors import ValidationFailed

            raise ValidationFailed("cursor is not valid.", {"field": "cursor"}) from None
        stmt = stmt.where(
            or_(Mask.updated_at > after, and_(Mask.updated_at == after, Mask.id > last_id))
        )
    rows = list(session.scalars(stmt.order_by(Mask.updated_at, Mask.id).limit(limit + 1)))
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]
        nxt = cursors.encode(last.updated_at.isoformat(), last.id)
    return rows[:limit], nxt


def superseded_ids(session: Session, masks: list[Mask]) -> set[int]:
    ids = [m.id for m in masks if m.source == "pseudo"]
    if not ids:
        return set()
    return set(session.scalars(select(Mask.id).where(Mask.id.in_(ids), _superseded_clause(Mask))))
