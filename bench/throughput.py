"""Pseudo-masking throughput: the final prediction pass and everything around it.

Per image the service decodes the upload, resizes it, runs S_a and S_b (each with a
horizontal flip) plus the discriminator under the tag constraint, resizes probabilities
back, scores superpixel regions, encodes a mask and a confidence PNG, and writes blobs
and rows. This times each part at 160 and 320 px for several batch sizes, counts the
network's FLOPs per image, and compares the achieved rate with this machine's measured
matrix-multiply rate. Database writes are compared one-transaction-per-image against
the batched write-back the worker uses.

    python bench/throughput.py --sizes 160 320 --batch-sizes 1 8 32 --images 64 \
        --json bench/out/throughput.json
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.imaging import encode_png  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.common import fresh_database, markdown_table, write_json  # noqa: E402
from models.config import PipelineConfig  # noqa: E402
from models.inference import iter_ensemble  # noqa: E402
from models.networks import build_discriminator, build_segmenter  # noqa: E402
from models.pipeline import ImageLabel  # noqa: E402
from models.pseudo import allowed_classes  # noqa: E402
from models.regions import padded_superpixels, region_boxes, region_scores  # noqa: E402
from models.train import resolve_device  # noqa: E402
from models.transforms import denormalise, multi_hot, prepare_images, probs_to_original  # noqa: E402

NUM_CLASSES = 21


def matmul_gflops(device: torch.device, n: int = 2048, seconds: float = 2.0) -> float:
    """Sustained float32 (bf16 on CUDA) matrix-multiply rate of this machine."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def flops_per_image(segmenters, disc, size: int, device: torch.device, precision: str) -> float:
    x = torch.randn(1, 3, size, size, device=device)
    allowed = torch.ones(1, NUM_CLASSES + 1, dtype=torch.bool, device=device)
    with FlopCounterMode(display=False) as counter:
        next(
            iter_ensemble(
                segmenters, disc, x, allowed, batch_size=1, device=device, precision=precision
            )
        )
    return float(counter.get_total_flops())


def synthetic_jpegs(n: int, width: int, height: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        y, x = np.mgrid[0:height, 0:width]
        img = rng.random(3) * 255 * (0.5 + 0.5 * np.sin((x + 7 * i) / 9.0 + y / 13.0))[..., None]
        buf = io.BytesIO()
        Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def run_case(
    jpegs: list[bytes],
    tags: list[frozenset[int]],
    size: int,
    batch: int,
    cfg: PipelineConfig,
    device: torch.device,
    segmenters,
    disc,
) -> dict[str, float]:
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    images = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs]
    t["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tensors, shapes = prepare_images(images, size)
    t["resize"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    segments = padded_superpixels(
        denormalise(tensors), shapes, cfg.slic_segments, cfg.slic_compactness
    )
    t["superpixels"] = time.perf_counter() - t0
    allowed = allowed_classes(multi_hot(tags, NUM_CLASSES), True)
    t["network"] = t["post"] = 0.0
    preds = []
    t0 = time.perf_counter()
    for out in iter_ensemble(
        segmenters,
        disc,
        tensors,
        allowed,
        batch_size=batch,
        device=device,
        shapes=shapes,
        precision=cfg.precision,
    ):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        t["network"] += t1 - t0
        for j in range(len(out.probs)):
            i = out.start + j
            conf, mask = probs_to_original(out.probs[j], shapes[i], images[i].shape[:2]).max(0)
            scores = region_scores(segments[i], out.real[j].numpy(), out.agree[j].numpy())
            h, w = shapes[i]
            preds.append(
                (
                    mask.numpy().astype(np.uint8),
                    (conf * 255).round().clamp(0, 255).numpy().astype(np.uint8),
                    region_boxes(
                        segments[i], scores, (images[i].shape[0] / h, images[i].shape[1] / w)
                    ),
                )
            )
        t0 = time.perf_counter()
        t["post"] += t0 - t1
    t0 = time.perf_counter()
    pngs = [(encode_png(m), encode_png(c)) for m, c, _ in preds]
    t["encode"] = time.perf_counter() - t0
    t["_preds"] = preds  # type: ignore[assignment]
    t["_bytes"] = float(sum(len(a) + len(b) for a, b in pngs))
    return t


def time_writes(preds, url: str | None, chunk: int) -> float | None:
    """Seconds to write every pseudo-mask (blobs + rows) with `chunk` images per transaction."""
    if url is None:
        return None
    from sqlalchemy import delete

    import worker.writeback as wb
    from app.tables import Image as ImageRow
    from app.tables import Job, Mask, Project, utcnow
    from worker.context import WorkerContext

    ctx = WorkerContext.from_settings(Settings(database_url=url, data_dir=Path(tempfile.mkdtemp())))
    try:
        with ctx.sessionmaker.begin() as s:
            project = Project(name=f"throughput-{time.time_ns()}", settings={})
            s.add(project)
            s.flush()
            rows = [
                ImageRow(
                    project_id=project.id,
                    sha256=f"{time.time_ns()}{i:040d}"[:64],
                    width=m.shape[1],
                    height=m.shape[0],
                    blob_key="0" * 64,
                    filename=f"{i}.jpg",
                    content_type="image/jpeg",
                    size_bytes=1,
                )
                for i, (m, _, _) in enumerate(preds)
            ]
            s.add_all(rows)
            job = Job(
                project_id=project.id,
                kind="pipeline",
                status="running",
                params={},
                metrics={},
                attempts=1,
                started_at=utcnow(),
            )
            s.add(job)
            s.flush()
            ids, pid, jid = [r.id for r in rows], project.id, job.id
        labels = [ImageLabel(i, m, c, r) for i, (m, c, r) in enumerate(preds)]
        old = wb.CHUNK
        wb.CHUNK = chunk
        t0 = time.perf_counter()
        wb.write_pseudo_masks(ctx, pid, jid, labels, ids, None)
        elapsed = time.perf_counter() - t0
        wb.CHUNK = old
        with ctx.sessionmaker.begin() as s:
            s.execute(delete(Mask).where(Mask.job_id == jid))
            s.execute(delete(Project).where(Project.id == pid))
        return elapsed
    finally:
        ctx.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 320])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--width", type=int, default=PipelineConfig().width, help="scratch backbone")
    ap.add_argument("--backbone", default=PipelineConfig().backbone, help="the service's default")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16"], help="PipelineConfig's"
    )
    ap.add_argument("--channels-last", action="store_true", help="CUDA: channels_last tensors")
    ap.add_argument("--no-db", action="store_true", help="skip the database write timings")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    device = resolve_device(args.device)
    db_url = None if args.no_db else fresh_database(prefix="tag2mask_throughput")
    torch.manual_seed(0)
    peak = matmul_gflops(device)
    rows, results = [], []
    for size in args.sizes:
        cfg = PipelineConfig(
            image_size=size,
            width=args.width,
            backbone=args.backbone,
            device=args.device,
            precision=args.precision,
        )
        segs = [build_segmenter(NUM_CLASSES, cfg, device) for _ in range(2)]
        disc = build_discriminator(NUM_CLASSES, cfg, device)
        if args.channels_last and device.type == "cuda":
            segs = [s.to(memory_format=torch.channels_last) for s in segs]
        flops = flops_per_image(segs, disc, size, device, args.precision)
        jpegs = synthetic_jpegs(args.images, size, size * 3 // 4)
        rng = np.random.default_rng(size)
        tags = [
            frozenset(int(k) for k in rng.choice(np.arange(1, NUM_CLASSES + 1), 3, replace=False))
            for _ in jpegs
        ]
        run_case(jpegs[:4], tags[:4], size, 4, cfg, device, segs, disc)  # warm-up
        for batch in args.batch_sizes:
            t = run_case(jpegs, tags, size, batch, cfg, device, segs, disc)
            preds = t.pop("_preds")  # type: ignore[arg-type]
            t.pop("_bytes")
            t["write_batched"] = time_writes(preds, db_url, 64) or 0.0
            t["write_per_image"] = time_writes(preds, db_url, 1) or 0.0
            n = len(jpegs)
            service = sum(v for k, v in t.items() if k != "write_per_image")
            achieved = flops * n / t["network"] / 1e9
            shares = {
                k: round(100 * v / service, 1) for k, v in t.items() if k != "write_per_image"
            }
            rows.append(
                [
                    size,
                    batch,
                    round(n / service, 1),
                    round(n / t["network"], 1),
                    round(flops / 1e9, 3),
                    round(achieved, 1),
                    round(100 * achieved / peak, 1),
                    shares["decode"],
                    shares["resize"],
                    shares["superpixels"],
                    shares["network"],
                    shares["post"],
                    shares["encode"],
                    shares["write_batched"],
                    round(t["write_per_image"] / max(t["write_batched"], 1e-9), 1),
                ]
            )
            results.append(
                {
                    "size": size,
                    "batch": batch,
                    "images": n,
                    "seconds": t,
                    "images_per_s": n / service,
                    "network_images_per_s": n / t["network"],
                    "gflop_per_image": flops / 1e9,
                    "achieved_gflops": achieved,
                    "pct_of_matmul": 100 * achieved / peak,
                }
            )
    print(
        f"\ndevice {device}, matmul {peak:.1f} GFLOP/s (float32 on CPU), backbone "
        f"{args.backbone}, precision {args.precision}, "
        f"width {args.width}, {NUM_CLASSES} classes, "
        f"{args.images} images per case (S_a+S_b with flips + Dsc)\n"
    )
    print(
        markdown_table(
            [
                "px",
                "batch",
                "img/s all",
                "img/s net",
                "GFLOP/img",
                "GFLOP/s",
                "% of matmul",
                "% decode",
                "% resize",
                "% SLIC",
                "% net",
                "% post",
                "% PNG",
                "% DB+blobs",
                "per-image writes: x slower",
            ],
            rows,
        )
    )
    write_json(
        args.json,
        {
            "benchmark": "throughput",
            "device": str(device),
            "matmul_gflops": peak,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
