"""Which images deserve a pixel mask next, and which categories need masks most."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.schemas.review import CategoryNeed, Suggestion, Suggestions
from app.services.images import image_views
from app.tables import Image, Job, Mask, Project

REASON_NAMES = {
    "uncertainty": "uncertain pixels (low confidence)",
    "disagreement": "the two networks disagree",
    "low_region_score": "weak regions (the discriminator doubts them)",
    "rare_categories": "a category with few human masks",
    "low_category_quality": "a category the held-out masks show segmented badly",
}


def latest_pipeline(session: Session, project_id: int) -> Job | None:
    return session.scalar(
        select(Job)
        .where(Job.project_id == project_id, Job.kind == "pipeline", Job.status == "succeeded")
        .order_by(Job.id.desc())
        .limit(1)
    )


def final_quality(metrics: dict[str, Any]) -> dict[str, float]:
    """Held-out per-class IoU of the nets that labelled the images (the stage named by
    ``predict.nets_from``; runs from before that field: the last kept round, else P-Net)."""
    stage = (metrics.get("predict") or {}).get("nets_from")
    if stage is None:
        stage = _last_kept_stage(metrics)
    return {str(k): float(v) for k, v in ((metrics.get(stage) or {}).get("iou") or {}).items()}


def _last_kept_stage(metrics: dict[str, Any]) -> str:
    rounds = sorted((k for k in metrics if k.startswith("round_")), key=lambda k: int(k[6:]))
    kept = [k for k in rounds if not (metrics[k] or {}).get("rolled_back")]
    return kept[-1] if kept else "pnet"


def human_mask_counts(session: Session, project_id: int) -> dict[int, int]:
    """Per class index, how many human-checked masks (human or accepted) hold its pixels."""
    counts: dict[int, int] = {}
    stats = session.scalars(
        select(Mask.stats).where(
            Mask.project_id == project_id,
            (Mask.source == "human") | (Mask.review_state == "accepted"),
        )
    )
    for st in stats:
        for idx in (st or {}).get("class_pixels", {}):
            i = int(idx)
            if 0 < i < 255:
                counts[i] = counts.get(i, 0) + 1
    return counts


def _main_reason(reasons: dict[str, Any]) -> str:
    numeric = {k: v for k, v in reasons.items() if isinstance(v, int | float) and k in REASON_NAMES}
    if not numeric:
        return "expected gain from a human mask"
    return REASON_NAMES[max(numeric, key=lambda k: numeric[k])]


def suggest(session: Session, project: Project, budget: int, min_masks: int = 3) -> Suggestions:
    """The latest run's greedy, category-covering ranking, minus images masked since."""
    job = latest_pipeline(session, project.id)
    ranking = list((job.metrics or {}).get("budget", [])) if job else []
    ids = [int(r["image_id"]) for r in ranking]
    masked = (
        set(
            session.scalars(
                select(Mask.image_id).where(
                    Mask.image_id.in_(ids),
                    (Mask.source == "human") | (Mask.review_state == "accepted"),
                )
            )
        )
        if ids
        else set()
    )
    picked = [r for r in ranking if int(r["image_id"]) not in masked][:budget]
    images = {
        im.id: im
        for im in session.scalars(
            select(Image)
            .where(Image.id.in_([int(r["image_id"]) for r in picked]))
            .options(selectinload(Image.tags))
        )
    }
    views = {v.id: v for v in image_views(session, list(images.values()))}
    items = [
        Suggestion(
            image=views[int(r["image_id"])],
            score=float(r["score"]),
            reason=_main_reason(r.get("reasons", {})),
            reasons=r.get("reasons", {}),
        )
        for r in picked
        if int(r["image_id"]) in views
    ]
    quality = final_quality(job.metrics or {}) if job else {}
    counts = human_mask_counts(session, project.id)
    categories = [
        CategoryNeed(
            index=c.class_index,
            name=c.name,
            human_masks=counts.get(c.class_index, 0),
            heldout_iou=quality.get(str(c.class_index)),
            strong=counts.get(c.class_index, 0) >= min_masks,
        )
        for c in project.categories
    ]
    # Neediest first: unmeasured or low quality, then fewest masks.
    categories.sort(
        key=lambda c: (c.heldout_iou if c.heldout_iou is not None else -1.0, c.human_masks)
    )
    return Suggestions(job_id=job.id if job else None, items=items, categories=categories)
