"""The quality benchmark's report: per-setting summaries, % of the full setting, the
transfer halves merged, the markdown table and the notes that explain its columns."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import markdown_table
from bench.quality_data import Setting
from bench.quality_runs import Run


def summarise(
    key: str,
    rows: list[dict[str, Any]],
    full_val: dict[str, float | None],
    setting: Setting,
    run: Run,
) -> dict[str, Any]:
    final = next(r for r in rows if r["setting"] == key and r.get("final"))
    out: dict[str, Any] = {
        "val_miou": final["val_miou"],
        "val_miou_untagged": final["val_miou_untagged"],
        "pct_of_full": final.get("pct_of_full"),
        "pct_of_full_untagged": final.get("pct_of_full_untagged"),
        "final_row": final["row"],
        "wall_s": run.seconds,
        "images": len(setting.train),
        "masked_images": len(setting.masked_positions),
        "tag_only_images": len(setting.unmasked_positions),
        "strong": setting.strong,
        "weak": setting.weak,
        "pipeline_strong": run.result.strong_classes,
        "pipeline_weak": run.result.weak_classes,
        "has_background": run.result.has_background,
        "holdout": len(run.result.holdout),
        "rounds_run": run.result.rounds_run,
        "rolled_back": run.result.rolled_back,
        "val_strong": final["val"]["tagged"].get("miou_strong"),
        "val_weak": final["val"]["tagged"].get("miou_weak"),
        **setting.info,
        "rows": [r for r in rows if r["setting"] == key],
    }
    if key != "full":
        label = final["label"] or {}
        out.update(
            label_miou=label.get("miou"),
            label_miou_strong=label.get("miou_strong"),
            label_miou_weak=label.get("miou_weak"),
            label_miou_delivered=(final.get("label_delivered") or {}).get("miou"),
        )
    return out


def add_pct(rows: list[dict[str, Any]], full_val: dict[str, float | None]) -> None:
    for row in rows:
        for col, ref in (("val_miou", "tagged"), ("val_miou_untagged", "untagged")):
            value, reference = row.get(col), full_val.get(ref)
            suffix = "" if ref == "tagged" else "_untagged"
            row[f"pct_of_full{suffix}"] = (
                round(100 * value / reference, 1) if value is not None and reference else None
            )


def merge_halves(settings: dict[str, dict[str, Any]]) -> None:
    """settings["transfer"] becomes the mean over halves (each kept under "halves")."""
    keys = sorted(k for k in settings if k == "transfer" or k.startswith("transfer_h"))
    if len(keys) < 2:
        if keys:
            settings["transfer"]["halves"] = [dict(settings["transfer"])]
        return
    halves = [settings.pop(k) for k in keys]
    merged: dict[str, Any] = {"halves": halves, "rows": [r for h in halves for r in h["rows"]]}
    for col in (
        "val_miou",
        "val_miou_untagged",
        "pct_of_full",
        "pct_of_full_untagged",
        "label_miou",
        "label_miou_strong",
        "label_miou_weak",
        "val_strong",
        "val_weak",
        "wall_s",
    ):
        values = [h.get(col) for h in halves if h.get(col) is not None]
        merged[col] = round(float(np.mean(values)), 4) if values else None
    settings["transfer"] = merged


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "setting",
        "row",
        "label mIoU",
        "label strong",
        "label weak",
        "val mIoU",
        "val mIoU (no tags)",
        "% of full",
        "% of full (no tags)",
        "wall (s)",
    ]
    body = []
    for r in rows:
        label = r["label"] or {}
        name = r["row"] + (" (rolled back)" if r.get("rolled_back") else "")
        name += " (final)" if r.get("final") else ""
        body.append(
            [
                r["setting"],
                name,
                fmt(label.get("miou")),
                fmt(label.get("miou_strong")),
                fmt(label.get("miou_weak")),
                fmt(r["val_miou"]),
                fmt(r["val_miou_untagged"]),
                fmt(r.get("pct_of_full"), 1),
                fmt(r.get("pct_of_full_untagged"), 1),
                fmt(r["wall_s"], 0),
            ]
        )
    return markdown_table(headers, body)


NOTES = [
    "One run_pipeline call per setting (the service's pipeline job function); the rows CAM, "
    "L-Net, L-Net + P-Net and rounds are that run's stages, each scored with the stage's "
    "own saved networks.",
    "label mIoU: the stage's label maps of the training images without a mask vs their "
    "hidden full masks (L-Net's low-margin pixels are 255 and count as misses); strong/weak "
    "use the setting's categories.",
    "val mIoU: models.pipeline.predict (S_a+S_b, flip-averaged) on the val images WITH their "
    "tags (the tag constraint is part of the method: classes outside the tags are "
    "excluded); '(no tags)' allows every category. CAM/L-Net rows: "
    "models.pipeline.predict_transfer with the val tags.",
    "% of full: val mIoU / val mIoU of the full setting's final network (same network, "
    "schedule and code, every training mask).",
    "supervised only: the pipeline's supervised stage, S_a+S_b (and Dsc) trained on the "
    "setting's training masks alone (its held-out slice excluded), as many optimizer steps "
    "per epoch as a P-Net epoch; its label maps of the tag-only images use their tags.",
    "budget rows (semi): the run's budget ranking's top B tag-only images get their true "
    "masks vs B random tag-only images (same seed); L-Net is restored from the semi run and "
    "the P-Net stage re-run (no rounds); label mIoU on images tag-only in both arms.",
    "partial masks rows (transfer): the unpainted pixels of the training masks that leave "
    "some of their image's tags unpainted, scored against the hidden masks: as the run "
    "completed them (L-Net over the left-out tags) and as CAM's argmax over all the "
    "image's tags would label them.",
    "wall (s): seconds from the run's start to the end of the row's stage (CAM = L-Net "
    "stage); val predictions are not counted.",
]
