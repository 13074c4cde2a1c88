"""`stats` job: per-category statistics of a project's tags and human masks.

Tells a data team which categories are strong (enough human masks) before a labeling run.
Two stages: tag counts (checkpointed), then a pass over the human masks in batches.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
from sqlalchemy import func, select

from app.imaging import decode_png_array
from app.tables import Category, Image, Mask, image_tags
from worker.job_context import JobContext
from worker.kinds import InvalidParams, JobKind

BATCH = 16


def validate(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"min_masks_per_class"}
    if unknown:
        raise InvalidParams(f"Unknown params for stats: {sorted(unknown)}.")
    n = params.get("min_masks_per_class", 3)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidParams("min_masks_per_class must be a positive integer.")
    return {"min_masks_per_class": n}


def _tag_counts(jc: JobContext) -> dict[int, int]:
    with jc.ctx.sessionmaker() as s:
        rows = s.execute(
            select(Category.class_index, func.count(image_tags.c.image_id))
            .join(image_tags, image_tags.c.category_id == Category.id, isouter=True)
            .where(Category.project_id == jc.project_id)
            .group_by(Category.class_index)
        )
        return {int(idx): int(n) for idx, n in rows}


def run(jc: JobContext) -> dict[str, Any]:
    rep = jc.reporter
    rep.stage("tags", 0.0, 0.1)
    saved = jc.checkpoints.load("tags")
    if saved is not None:
        tagged = {int(k): v for k, v in json.loads(saved).items()}
        rep.event("tags stage restored from checkpoint")
    else:
        tagged = _tag_counts(jc)
        jc.checkpoints.save("tags", json.dumps(tagged).encode())
    rep.progress(1.0, force=True)

    rep.stage("masks", 0.1, 1.0)
    with jc.ctx.sessionmaker() as s:
        cats = {
            c.class_index: c.name
            for c in s.scalars(select(Category).where(Category.project_id == jc.project_id))
        }
        keys = list(
            s.scalars(
                select(Mask.blob_key)
                .join(Image, Image.id == Mask.image_id)
                .where(Image.project_id == jc.project_id, Mask.source == "human")
                .order_by(Mask.id)
            )
        )
    masks_with = Counter[int]()
    pixels = np.zeros(256, dtype=np.int64)
    for start in range(0, len(keys), BATCH):
        jc.check_cancel()
        for key in keys[start : start + BATCH]:
            counts = np.bincount(decode_png_array(jc.ctx.blobs.get(key)).ravel(), minlength=256)
            pixels += counts
            masks_with.update(int(i) for i in np.flatnonzero(counts[1:255]) + 1)
        rep.progress((start + BATCH) / max(len(keys), 1))
    labelled = int(pixels[:255].sum())
    n_min = jc.params["min_masks_per_class"]
    categories = [
        {
            "index": idx,
            "name": name,
            "images_tagged": tagged.get(idx, 0),
            "human_masks": masks_with[idx],
            "pixel_fraction": float(pixels[idx] / labelled) if labelled else 0.0,
            "strong": masks_with[idx] >= n_min,
        }
        for idx, name in sorted(cats.items())
    ]
    return {
        "human_masks": len(keys),
        "background_fraction": float(pixels[0] / labelled) if labelled else 0.0,
        "categories": categories,
    }


KIND = JobKind("stats", validate, run)
