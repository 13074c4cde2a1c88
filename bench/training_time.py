"""Training time per stage and per epoch at the default settings, from the job's own events.

Uploads a project (MSRC-v2 images from --data, or synthetic shapes) through the service
layer, runs a `pipeline` job through the same job function the workers run, and reads
each stage's start times from the job's events.

    python bench/training_time.py --data ../shared/data/msrc_v2 --images 120 \
        --json bench/out/training.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app.schemas.project import CategoryCreate, ProjectCreate  # noqa: E402
from app.services.images import Upload, upload_image  # noqa: E402
from app.services.projects import create_project  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.tables import Job, JobEvent  # noqa: E402
from app.unit_of_work import UnitOfWork  # noqa: E402
from bench.common import drop_database, fresh_database, markdown_table, write_json  # noqa: E402
from models.config import PipelineConfig  # noqa: E402
from worker.context import WorkerContext  # noqa: E402
from worker.execute import run_job  # noqa: E402


def dataset(
    data_dir: Path | None, n: int, seed: int
) -> tuple[list[str], list[tuple[bytes, list[str], bytes | None]]]:
    """(category names, [(image bytes, tag names, mask PNG or None)]): a third of them masked."""
    rng = np.random.default_rng(seed)
    if data_dir is not None:
        classes = json.loads((data_dir / "classes.json").read_text())
        names = {c["id"]: c["name"] for c in classes if c["id"] != 0}
        stems = sorted(p.stem for p in (data_dir / "images").glob("*.jpg"))
        picked = rng.choice(stems, size=min(n, len(stems)), replace=False)
        items = []
        for i, stem in enumerate(picked):
            mask_png = (data_dir / "masks" / f"{stem}.png").read_bytes()
            mask = np.asarray(Image.open(data_dir / "masks" / f"{stem}.png"))
            tags = [names[int(k)] for k in np.unique(mask) if 0 < k < 255]
            items.append(
                (
                    (data_dir / "images" / f"{stem}.jpg").read_bytes(),
                    tags,
                    mask_png if i % 3 == 0 else None,
                )
            )
        return [names[k] for k in sorted(names)], items
    from tests.synthetic import encode_png, make_shapes_dataset

    images, masks, tags = make_shapes_dataset(n, size=96, seed=seed)
    cats = ["circle", "square", "triangle", "cross"]
    return cats, [
        (encode_png(im), [cats[k - 1] for k in sorted(t)], encode_png(m) if i % 3 == 0 else None)
        for i, (im, m, t) in enumerate(zip(images, masks, tags, strict=True))
    ]


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=None, help="images/ masks/ classes.json folder")
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline params (default: the service's defaults)",
    )
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    params = {k: json.loads(v) for k, v in (p.split("=", 1) for p in args.param)}
    cfg = PipelineConfig.from_params(params)

    url = fresh_database(prefix="tag2mask_training")
    settings = Settings(database_url=url, data_dir=Path(tempfile.mkdtemp()), job_runner="thread")
    ctx = WorkerContext.from_settings(settings)
    try:
        names, items = dataset(args.data, args.images, args.seed)
        uow = UnitOfWork(ctx.sessionmaker, ctx.blobs)
        project = create_project(
            uow.session,
            ProjectCreate(name="training-time", categories=[CategoryCreate(name=n) for n in names]),
        )
        for i, (data, tags, mask) in enumerate(items):
            upload_image(
                uow,
                project,
                Upload(f"{i}.jpg", data, tags, mask),
                max_pixels=settings.max_image_pixels,
            )
        job = Job(
            project_id=project.id,
            kind="pipeline",
            status="queued",
            params=params,
            metrics={},
            attempts=0,
        )
        uow.session.add(job)
        uow.session.flush()
        job_id = job.id
        uow.commit()
        uow.close()
        t0 = time.perf_counter()
        outcome = run_job(ctx, job_id, worker="bench")
        total = time.perf_counter() - t0
        with ctx.sessionmaker() as s:
            events = s.execute(
                select(JobEvent.ts, JobEvent.message)
                .where(JobEvent.job_id == job_id)
                .order_by(JobEvent.id)
            ).all()
            row = s.get(Job, job_id)
            finished = row.finished_at
            metrics = row.metrics
    finally:
        ctx.dispose()
        drop_database(url)
    starts = [
        (m.removeprefix("stage ").removesuffix(" started"), ts)
        for ts, m in events
        if m.startswith("stage ") and m.endswith(" started")
    ]
    epochs = {
        "lnet": cfg.epochs_lnet,
        "supervised": cfg.epochs_supervised,
        "pnet": cfg.epochs_pnet,
    }
    rows, out = [], []
    for (stage, start), nxt in zip(starts, [*starts[1:], ("end", finished)], strict=True):
        seconds = (nxt[1] - start).total_seconds()
        n_epochs = epochs.get(stage, cfg.epochs_round if stage.startswith("round_") else None)
        per_epoch = seconds / n_epochs if n_epochs else None
        rows.append(
            [stage, round(seconds, 1), n_epochs, None if per_epoch is None else round(per_epoch, 2)]
        )
        out.append(
            {"stage": stage, "seconds": seconds, "epochs": n_epochs, "seconds_per_epoch": per_epoch}
        )
    where = (
        f"{args.data.name} ({len(items)} images)"
        if args.data
        else f"synthetic ({len(items)} images)"
    )
    print(
        f"\npipeline job {outcome} in {total:.0f} s on {where}, a third with human masks; "
        f"image_size {cfg.image_size}, width {cfg.width}, batch {cfg.batch_size}\n"
    )
    print(markdown_table(["stage", "seconds", "epochs", "s / epoch"], rows))
    write_json(
        args.json,
        {
            "benchmark": "training_time",
            "outcome": outcome,
            "total_s": total,
            "images": len(items),
            "config": cfg.to_dict(),
            "stages": out,
            "job_metrics": metrics,
        },
    )
    return 0 if outcome == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
