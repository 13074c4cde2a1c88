"""Write a run's results: model versions, then a pseudo-mask + confidence per image.

Idempotent per (job, image) and (job, network): a re-delivered job writes nothing twice.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import torch
from sqlalchemy import select

from app.imaging import encode_png, mask_stats
from app.tables import Image, Mask, ModelVersion
from models.pipeline import ImageLabel
from worker.context import WorkerContext

CHUNK = 64


def _is_state_dict(value: Any) -> bool:
    """A network's weights (name → tensor), not a dict of settings such as the config."""
    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def write_model_versions(
    ctx: WorkerContext,
    project_id: int,
    job_id: int,
    model_state: dict[str, Any],
    metrics: dict[str, Any],
) -> dict[str, int]:
    """One model_versions row per network (weights in the blob store); returns name → id."""
    ids: dict[str, int] = {}
    with ctx.sessionmaker.begin() as s:
        existing = {
            network: mv_id
            for network, mv_id in s.execute(
                select(ModelVersion.network, ModelVersion.id).where(ModelVersion.job_id == job_id)
            )
        }
        networks = {k for k, v in model_state.items() if _is_state_dict(v)}
        meta = {k: v for k, v in model_state.items() if k not in networks}
        for network, state in model_state.items():
            if network not in networks:
                continue
            if network in existing:
                ids[network] = existing[network]
                continue
            buf = io.BytesIO()
            torch.save(
                {
                    "network": network,
                    "state_dict": state,
                    "meta": meta,
                },
                buf,
            )
            key, _ = ctx.blobs.put(buf.getvalue())
            row = ModelVersion(
                project_id=project_id, job_id=job_id, network=network, blob_key=key, metrics=metrics
            )
            s.add(row)
            s.flush()
            ids[network] = row.id
    return ids


def write_pseudo_masks(
    ctx: WorkerContext,
    project_id: int,
    job_id: int,
    labels: Sequence[ImageLabel],
    image_ids: Sequence[int],
    model_version_id: int | None,
    *,
    on_progress: Callable[[float], None] = lambda f: None,
) -> int:
    """Insert the pseudo-masks this job has not written yet; returns how many it wrote."""
    written = 0
    for start in range(0, len(labels), CHUNK):
        chunk = labels[start : start + CHUNK]
        wanted = {image_ids[lab.index]: lab for lab in chunk}
        with ctx.sessionmaker.begin() as s:
            done = set(
                s.scalars(
                    select(Mask.image_id).where(
                        Mask.job_id == job_id, Mask.image_id.in_(list(wanted))
                    )
                )
            )
            alive = set(s.scalars(select(Image.id).where(Image.id.in_(list(wanted)))))
            for image_id, lab in wanted.items():
                if image_id in done or image_id not in alive:  # written before, or deleted
                    continue
                mask_key, _ = ctx.blobs.put(encode_png(lab.mask))
                conf_key, _ = ctx.blobs.put(encode_png(lab.confidence))
                s.add(
                    Mask(
                        image_id=image_id,
                        project_id=project_id,
                        source="pseudo",
                        blob_key=mask_key,
                        confidence_key=conf_key,
                        job_id=job_id,
                        model_version_id=model_version_id,
                        stats=mask_stats(lab.mask),
                        mean_confidence=float(lab.confidence.mean()) / 255.0,
                        region_scores=lab.regions,
                        review_state="pending",
                    )
                )
                written += 1
        on_progress(min(1.0, (start + len(chunk)) / max(len(labels), 1)))
    return written
