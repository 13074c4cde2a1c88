"""`export` job: a project's masks as a dataset file (COCO JSON, VOC zip, Label Studio JSON).

params: `format` (coco | voc | label-studio, required), `include` (accepted | human | best,
default accepted). Image URLs (Label Studio `data.image`, COCO `coco_url`) are signed
(app/signing.py), absolute under TAG2MASK_PUBLIC_URL when set; `urls_expire_at` in the
metrics says until when they load.

The file is written streaming to a scratch file (images in id order, a chunk at a time,
each chunk read in a short session), then stored in the blob store; its
key becomes the job's `result_key`, downloaded from GET /v1/jobs/{id}/result.
"""

from __future__ import annotations

import json
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from app.blobs import BlobNotFound
from app.signing import UrlSigner, iso
from app.tables import Category, Job, Project
from worker.export_formats import FORMATS, INCLUDES, WRITERS, export_filename
from worker.export_formats.base import (
    ExportProject,
    count_images,
    iter_chosen,
    load_item,
    read_chunks,
)
from worker.job_context import JobContext
from worker.kinds import InvalidParams, JobKind
from worker.progress import ClaimLost

CHUNK = 100
STAGE = "export"


def validate(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - {"format", "include"}
    if unknown:
        raise InvalidParams(f"Unknown params for export: {sorted(unknown)}.")
    fmt = params.get("format")
    if fmt is None:
        raise InvalidParams(f"export needs a format: one of {', '.join(FORMATS)}.")
    if fmt not in FORMATS:
        raise InvalidParams(f"Unknown export format {fmt!r}; known: {', '.join(FORMATS)}.")
    include = params.get("include", "accepted")
    if include not in INCLUDES:
        raise InvalidParams(f"Unknown include {include!r}; known: {', '.join(INCLUDES)}.")
    return {"format": fmt, "include": include}


def _set_result(jc: JobContext, key: str) -> None:
    with jc.ctx.sessionmaker.begin() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == jc.job_id, Job.attempts == jc.attempt, Job.status == "running")
            .values(result_key=key)
        )
        if not res.rowcount:  # type: ignore[attr-defined]
            raise ClaimLost(f"job {jc.job_id} attempt {jc.attempt} no longer owns the job")


def _project(jc: JobContext, include: str) -> ExportProject:
    with jc.ctx.sessionmaker() as s:
        name = s.scalar(select(Project.name).where(Project.id == jc.project_id)) or ""
        cats = {
            int(idx): n
            for idx, n in s.execute(
                select(Category.class_index, Category.name).where(
                    Category.project_id == jc.project_id
                )
            )
        }
    return ExportProject(id=jc.project_id, name=name, include=include, categories=cats)


def run(jc: JobContext) -> dict[str, Any]:
    rep = jc.reporter
    fmt, include = jc.params["format"], jc.params["include"]
    filename = export_filename(jc.project_id, jc.job_id, fmt)

    saved = jc.checkpoints.load(STAGE)
    if saved is not None:  # a re-delivered job whose file is already stored
        done = json.loads(saved)
        if jc.ctx.blobs.exists(done["key"]):
            _set_result(jc, done["key"])
            rep.event("export restored from checkpoint", data={"key": done["key"]})
            return done["metrics"]

    rep.stage(STAGE, 0.0, 0.95)
    project = _project(jc, include)
    with jc.ctx.sessionmaker() as s:
        total = count_images(s, jc.project_id)
    writer_cls = WRITERS[fmt]
    # Every URL of one export lives as long: TAG2MASK_SIGNED_URL_TTL_S from now.
    signer = UrlSigner.from_settings(jc.ctx.settings)
    urls_expire = signer.expiry()
    scratch = jc.ctx.settings.data_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    images = annotations = scanned = skipped = 0
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"export-{jc.job_id}-") as work:
        path = Path(work) / f"export{writer_cls.extension}"
        with open(path, "wb") as out:
            writer = writer_cls(
                out,
                Path(work),
                project,
                max_pixels=jc.ctx.settings.max_image_pixels,
                image_url=partial(signer.image_file, exp=urls_expire),
            )
            try:
                for n, chosen in iter_chosen(jc.ctx.sessionmaker, jc.project_id, include, CHUNK):
                    jc.check_cancel()
                    for image, mask in chosen:
                        try:
                            item = load_item(
                                jc.ctx.blobs,
                                image,
                                mask,
                                with_confidence=writer.needs_confidence,
                                with_image=writer.needs_image,
                            )
                        except BlobNotFound:  # the image was deleted while we exported
                            skipped += 1
                            continue
                        annotations += writer.add(item)
                        images += 1
                    scanned += n
                    rep.progress(
                        scanned / max(total, 1), {"images": images, "annotations": annotations}
                    )
                writer.finish()
            finally:
                writer.close()
        size = path.stat().st_size
        rep.stage("store", 0.95, 1.0)
        key, _ = jc.ctx.blobs.put_chunks(read_chunks(path))
    metrics: dict[str, Any] = {
        "format": fmt,
        "include": include,
        "images": images,
        "annotations": annotations,
        "bytes": size,
        "filename": filename,
        "urls_expire_at": iso(urls_expire),
        "urls_absolute": bool(signer.base),
    }
    if skipped:
        metrics["skipped_images"] = skipped
    _set_result(jc, key)
    jc.checkpoints.save(STAGE, json.dumps({"key": key, "metrics": metrics}).encode())
    rep.event(
        f"export written: {images} images, {annotations} annotations, {size} bytes",
        data={"key": key, **metrics},
    )
    return metrics


KIND = JobKind("export", validate, run)
