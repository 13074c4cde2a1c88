"""The ML backend's work: predictions for tasks, and who Label Studio is for a project.

/predict answers, per task, the image's current best mask when tag2mask has the image
(its human mask, else its accepted, else its latest pseudo-mask: GET /mask?source=best),
and otherwise the prediction of the latest finished run's networks. Model versions are
the export's: `human`, or `tag2mask-job-<id>` of the run that made the mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np
from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.deps import in_unit_of_work
from app.api.lean import read_blob
from app.errors import Conflict, NotFound
from app.imaging import decode_png_array, decode_rgb
from app.label_studio.runs import LATEST_RUN_NETWORKS, Run, RunPredictors, latest_run
from app.label_studio.task_images import (
    LabelStudioLink,
    TaskImage,
    image_url_of,
    resolve_task_image,
)
from app.services.masks import MASK_PREFERENCE
from app.services.projects import get_project_or_raise
from app.services.scope import Principal
from app.settings import Settings
from app.tables import Image, Mask, Project
from app.unit_of_work import UnitOfWork
from worker.export_formats.label_studio import brush_regions, model_version, run_version

log = logging.getLogger(__name__)
SETTINGS_KEY = "label_studio"  # in projects.settings: what Label Studio's /setup said


@dataclass(frozen=True)
class ProjectView:
    """What predictions need of a project, read once per request."""

    id: int
    categories: dict[int, str]  # class index → name
    run: Run | None
    link: LabelStudioLink

    @property
    def version(self) -> str:
        """The model version Label Studio is told (/setup) and new predictions carry."""
        return run_version(self.run.job_id) if self.run else "tag2mask"

    def class_of(self) -> dict[str, int]:
        return {name: idx for idx, name in self.categories.items()}


def link_of(project: Project, settings: Settings) -> LabelStudioLink:
    """Label Studio's address and token: from its last /setup, else from settings."""
    said = (project.settings or {}).get(SETTINGS_KEY) or {}
    token = settings.label_studio_token.get_secret_value() if settings.label_studio_token else None
    return LabelStudioLink(
        said.get("hostname") or settings.label_studio_url, said.get("access_token") or token
    )


def project_view(
    uow: UnitOfWork, project_id: int, who: Principal, settings: Settings
) -> ProjectView:
    project = get_project_or_raise(uow.session, project_id, who)
    rows = list(uow.session.execute(LATEST_RUN_NETWORKS, {"project_id": project_id}).all())
    return ProjectView(
        project.id,
        {c.class_index: c.name for c in project.categories},
        latest_run(rows),
        link_of(project, settings),
    )


def remember_setup(uow: UnitOfWork, project_id: int, who: Principal, said: dict[str, Any]) -> None:
    """Keep Label Studio's hostname, access token and project from /setup (when changed)."""
    project = get_project_or_raise(uow.session, project_id, who)
    keep = {k: said.get(k) for k in ("hostname", "access_token", "project") if said.get(k)}
    current = dict(project.settings or {})
    if keep and current.get(SETTINGS_KEY) != keep:
        project.settings = {**current, SETTINGS_KEY: keep}
        uow.session.flush()


def find_image(uow: UnitOfWork, view: ProjectView, found: TaskImage) -> Image | None:
    """Our image a task shows (by id from our URL, or by the fetched bytes' sha256)."""
    if found.image_id is not None:
        where = Image.id == found.image_id
    else:
        where = Image.sha256 == found.sha256
    return uow.session.scalar(
        select(Image).where(where, Image.project_id == view.id).options(selectinload(Image.tags))
    )


def _best_mask(uow: UnitOfWork, image_id: int) -> Mask | None:
    return uow.session.scalar(
        select(Mask).where(Mask.image_id == image_id).order_by(*MASK_PREFERENCE).limit(1)
    )


def _tags_of(task: dict[str, Any], view: ProjectView) -> frozenset[int]:
    """Tags a task may carry in `data.tags` (names, a list or comma-separated); else none."""
    raw = (task.get("data") or {}).get("tags")
    names = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else []
    class_of = view.class_of()
    return frozenset(
        class_of[n.strip()] for n in names if isinstance(n, str) and n.strip() in class_of
    )


def _stored_prediction(
    mask: Mask, array: np.ndarray, conf: np.ndarray | None, view: ProjectView
) -> dict[str, Any]:
    def score(_idx: int, binary: np.ndarray) -> float | None:
        if mask.source == "human" or conf is None:
            return None
        return round(float(conf[binary].mean()) / 255.0, 6)

    result = brush_regions(array, view.categories, id_prefix=f"m{mask.id}", score=score)
    overall = 1.0 if mask.source == "human" else mask.mean_confidence
    return {"result": result, "score": overall, "model_version": model_version(mask)}


async def predict_task(
    request: Request, view: ProjectView, who: Principal, task: dict[str, Any]
) -> dict[str, Any]:
    """One task's prediction; raises ApiError (a task error) when it cannot be made."""
    state, settings = request.app.state, request.app.state.settings
    found = await resolve_task_image(
        image_url_of(task),
        state.signer,
        view.link,
        state.webhook_policy,
        max_bytes=settings.max_upload_bytes,
        timeout_s=settings.label_studio_fetch_timeout_s,
    )

    def stored(uow: UnitOfWork) -> tuple[Mask | None, int | None, str | None]:
        image = find_image(uow, view, found)
        if image is None:
            return None, None, None
        mask = _best_mask(uow, image.id)
        if mask is not None:
            uow.session.expunge(mask)
        return mask, image.id, image.blob_key

    mask, image_id, image_key = await in_unit_of_work(request, stored)
    if mask is not None:
        array = decode_png_array(await read_blob(request, mask.blob_key))
        conf = None
        if mask.confidence_key:
            conf = decode_png_array(await read_blob(request, mask.confidence_key))
        return _stored_prediction(mask, array, conf, view)
    data = found.data
    if data is None:  # our signed URL: the bytes are ours
        if image_key is None:
            raise NotFound(
                f"The task's image {found.image_id} is not in project {view.id} (deleted?).",
                {"task": task.get("id")},
            )
        data = await anyio.to_thread.run_sync(request.app.state.blobs.get, image_key)
    return await _run_prediction(request, view, task, data, image_id)


async def _run_prediction(
    request: Request, view: ProjectView, task: dict[str, Any], data: bytes, image_id: int | None
) -> dict[str, Any]:
    if view.run is None:
        raise Conflict(
            "tag2mask has no mask for this image and the project has no finished labeling "
            "run to predict one: start a run (POST /v1/projects/{pid}/jobs, or Start Training).",
            {"task": task.get("id")},
        )
    run, state = view.run, request.app.state
    predictors: RunPredictors = state.ls_predictors
    max_pixels = state.settings.max_image_pixels

    def work() -> Any:
        rgb = decode_rgb(data, max_pixels)
        return predictors.predict(state.blobs, run, rgb, _tags_of(task, view))

    pred = await anyio.to_thread.run_sync(work)

    def score(_idx: int, binary: np.ndarray) -> float:
        return round(float(pred.confidence[binary].mean()) / 255.0, 6)

    prefix = f"j{run.job_id}i{image_id}" if image_id else f"j{run.job_id}t{task.get('id')}"
    return {
        "result": brush_regions(pred.mask, view.categories, id_prefix=prefix, score=score),
        "score": round(float(pred.confidence.mean()) / 255.0, 6),
        "model_version": run_version(run.job_id),
    }
