"""Project rows and blobs → the arrays models/ takes (images, tags, human masks).

Accepted pseudo-masks count as human masks: people checked them. Images whose latest
pseudo-mask was rejected are labelled again but never train on their pseudo-labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from app.imaging import decode_png_array, decode_rgb
from app.tables import Category, Image, Mask, image_tags
from models.data import LabelingData
from worker.context import WorkerContext


@dataclass
class ProjectData:
    data: LabelingData
    image_ids: list[int]  # data index → image id
    class_names: dict[int, str]
    mask_sources: dict[int, str]  # image id → "human" | "accepted" for images with a mask


def load_project(
    ctx: WorkerContext,
    project_id: int,
    *,
    on_progress: Callable[[float], None] = lambda f: None,
    check_cancel: Callable[[], None] = lambda: None,
) -> ProjectData:
    """Every image of the project in id order, with tags and its best human-checked mask."""
    with ctx.sessionmaker() as s:
        cats = s.execute(
            select(Category.id, Category.class_index, Category.name).where(
                Category.project_id == project_id
            )
        ).all()
        images = s.execute(
            select(Image.id, Image.blob_key)
            .where(Image.project_id == project_id)
            .order_by(Image.id)
        ).all()
        cat_index = {cid: idx for cid, idx, _ in cats}
        tags: dict[int, set[int]] = {iid: set() for iid, _ in images}
        for iid, cid in s.execute(
            select(image_tags.c.image_id, image_tags.c.category_id)
            .join(Image, Image.id == image_tags.c.image_id)
            .where(Image.project_id == project_id)
        ):
            tags[iid].add(cat_index[cid])
        mask_rows = s.execute(
            select(Mask.image_id, Mask.source, Mask.blob_key, Mask.id)
            .join(Image, Image.id == Mask.image_id)
            .where(Image.project_id == project_id)
            .where((Mask.source == "human") | (Mask.review_state == "accepted"))
            .order_by(Mask.id)
        ).all()
        # The newest pseudo-mask's review state per image: rejected ones must not train.
        latest_state: dict[int, str] = dict(
            s.execute(
                select(Mask.image_id, Mask.review_state)
                .where(Mask.project_id == project_id, Mask.source == "pseudo")
                .order_by(Mask.id)
            ).all()
        )
    best: dict[int, tuple[str, str]] = {}
    for iid, source, key, _ in mask_rows:  # human wins; among pseudo, the newest accepted
        if source == "human" or best.get(iid, ("", ""))[0] != "human":
            best[iid] = (source, key)
    arrays: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    for n, (iid, key) in enumerate(images):
        if n % 16 == 0:
            check_cancel()
            on_progress(n / max(len(images), 1))
        arrays.append(decode_rgb(ctx.blobs.get(key), ctx.settings.max_image_pixels))
        masks.append(decode_png_array(ctx.blobs.get(best[iid][1])) if iid in best else None)
    names = {idx: name for _, idx, name in cats}
    num_classes = max(names, default=0)
    rejected = frozenset(
        n
        for n, (iid, _) in enumerate(images)
        if iid not in best and latest_state.get(iid) == "rejected"
    )
    data = LabelingData(
        no_pseudo=rejected,
        images=arrays,
        tags=[frozenset(tags[iid]) for iid, _ in images],
        masks=masks,
        num_classes=max(num_classes, 1),
        class_names=["background"] + [names.get(i, str(i)) for i in range(1, num_classes + 1)],
    )
    sources = {iid: ("human" if src == "human" else "accepted") for iid, (src, _) in best.items()}
    return ProjectData(data, [iid for iid, _ in images], names, sources)
