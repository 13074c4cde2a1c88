"""Rows of the quality benchmark's table: one per stage of a run (label quality on the
tag-only training images, val mIoU), the partial masks' completion rows and the budget rows
(suggested vs random extra masks)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.quality_data import Dataset, Setting, with_masks
from bench.quality_runs import Run, restored_lnet, run_setting
from bench.quality_scoring import Scorer, round_or_none, score
from models.config import PipelineConfig
from models.partial_masks import partial_images
from models.pipeline import predict_transfer
from models.transforms import labels_to_original, resized_shape

STAGE_LABELS = {
    "cam": "CAM (tags)",
    "lnet": "L-Net",
    "supervised": "supervised only (human masks)",
    "pnet": "L-Net + P-Net",
}


def stage_label(stage: str) -> str:
    if stage.startswith("round_"):
        return f"self-training round {stage.removeprefix('round_')}"
    return STAGE_LABELS.get(stage, stage)


def label_quality(
    ds: Dataset, setting: Setting, masks: dict[int, np.ndarray], positions: Sequence[int]
) -> dict[str, Any]:
    """Scores of label maps of training images (by setting position) vs their hidden masks."""
    preds = [masks[p] for p in positions]
    gts = [ds.masks[setting.train[p]] for p in positions]
    return score(preds, gts, ds.num_classes, setting.strong, setting.weak)


def make_row(
    setting_key: str,
    name: str,
    *,
    label: dict[str, Any] | None,
    val: dict[str, Any],
    seconds: float | None,
    cumulative: float | None,
    **extra: Any,
) -> dict[str, Any]:
    tagged = val.get("tagged", {})
    untagged = val.get("untagged") or {}
    return {
        "setting": setting_key,
        "row": name,
        "label": label,
        "label_miou": None if label is None else label["miou"],
        "val_miou": tagged.get("miou"),
        "val_miou_untagged": untagged.get("miou"),
        "val": val,
        "stage_seconds": seconds,
        "wall_s": cumulative,
        **extra,
    }


def delivery_cfg(cfg: PipelineConfig, model_state: dict[str, Any]) -> PipelineConfig:
    """``cfg`` with the CAM prior weight the run delivered its masks with (fitted on the
    held-out masks where cam_prior_fit=holdout): every segmenter row is scored with it."""
    weight = float(model_state["config"].get("cam_prior", cfg.cam_prior))
    return dataclasses.replace(cfg, cam_prior=weight)


def teacher_priors(metrics: dict[str, Any]) -> dict[str, Any]:
    """The CAM prior of the labels that taught P-Net (cam_prior_labels=teachers): each
    teacher's weight and its relabelled targets' held-out mIoU."""
    priors = {
        key.removesuffix("_prior"): {
            "cam_prior": report["cam_prior"],
            "holdout_miou": round_or_none(report.get("miou")),
        }
        for key, report in metrics.items()
        if key.endswith("_prior")
    }
    return {"teacher_priors": priors} if priors else {}


def stage_rows(ds: Dataset, run: Run, scorer: Scorer, key: str) -> list[dict[str, Any]]:
    """CAM, L-Net, P-Net and round rows of one pipeline run (positions = all of train)."""
    result, setting = run.result, run.setting
    cfg = delivery_cfg(run.cfg, result.model_state)
    unmasked = setting.unmasked_positions
    transfer = scorer.transfer(run.model_state("lnet"), cfg, setting)
    rows = []
    for stage in result.stage_masks:
        if stage in ("cam", "lnet"):
            val = transfer[stage]
        else:
            val = scorer.segmenter(run.model_state(stage), cfg, setting)
        held = result.metrics.get(stage, {})
        timing = "lnet" if stage == "cam" else stage
        rows.append(
            make_row(
                key,
                stage_label(stage),
                stage=stage,
                label=label_quality(ds, setting, result.stage_masks[stage], unmasked)
                if unmasked
                else None,
                val=val,
                seconds=run.clock.seconds(timing),
                cumulative=run.clock.cumulative(timing),
                holdout_miou=round_or_none(held.get("miou")),
                rolled_back=bool(held.get("rolled_back", False)),
                **(teacher_priors(result.metrics) if stage == "pnet" else {}),
            )
        )
    # The final network: the last segmenter stage that was kept (a rolled-back P-Net or
    # round restores the previous stage's nets, which the run then delivers).
    final = [r for r in rows if r["stage"] not in ("cam", "lnet") and not r["rolled_back"]][-1]
    final["final"] = True
    final["cam_prior"] = cfg.cam_prior  # the weight the delivered masks were predicted with
    if unmasked:  # what the run delivers: predict-stage masks at original size, no 255
        delivered = {label.index: label.mask for label in result.labels}
        final["label_delivered"] = label_quality(ds, setting, delivered, unmasked)
    return rows + completion_rows(ds, run, key)


def completion_rows(ds: Dataset, run: Run, key: str) -> list[dict[str, Any]]:
    """How well the unpainted pixels of partial masks were completed (models/partial_masks):
    L-Net's labels over the tags each mask left out, as the run trained on them, against
    CAM's argmax over all of the image's tags, on the same pixels of the hidden masks."""
    completion = run.saved.get("lnet", {}).get("completion")
    if completion is None:
        return []
    setting, result, cfg = run.setting, run.result, run.cfg
    held = set(result.holdout)
    partial = partial_images(
        setting.visible,
        [ds.tags[i] for i in setting.train],
        [p for p in setting.masked_positions if p not in held],
        result.has_background,
    )
    images = [ds.images[setting.train[p]] for p in partial.indices]
    completed = [
        labels_to_original(c, resized_shape(*im.shape[:2], cfg.image_size), im.shape[:2])
        for c, im in zip(completion, images, strict=True)
    ]
    unpainted = [
        np.where(setting.visible[p] == 255, ds.masks[setting.train[p]], 255).astype(np.uint8)
        for p in partial.indices
    ]
    tags = [ds.tags[setting.train[p]] for p in partial.indices]
    cam_all, _ = predict_transfer(run.model_state("lnet"), images, tags, cfg)
    common = dict(
        val={}, seconds=None, cumulative=None, rolled_back=False, partial_masks=len(partial)
    )
    return [
        make_row(
            key,
            "partial masks: unpainted pixels by CAM over all tags",
            stage="completion_cam_all",
            label=score(cam_all, unpainted, ds.num_classes, setting.strong, setting.weak),
            **common,
        ),
        make_row(
            key,
            "partial masks: unpainted pixels completed (left-out tags)"
            if cfg.partial_masks != "mixed"
            else "partial masks: unpainted pixels completed (entangled categories only)",
            stage="completion",
            label=score(completed, unpainted, ds.num_classes, setting.strong, setting.weak),
            **common,
        ),
    ]


def budget_rows(
    ds: Dataset,
    run: Run,
    budget: int,
    seed: int,
    scorer: Scorer,
    key: str,
    progress: bool,
    repeats: int = 1,
    epochs: dict[str, int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Spend ``budget`` masks on the run's suggested images vs on random tag-only images,
    re-running the supervised and P-Net stages (L-Net restored, no rounds) for each; both
    scored on val and on the images left tag-only in both arms. ``epochs`` overrides the
    two stages' epochs in both arms alike (the profile's ``budget_epochs``).

    ``repeats`` pairs: pair r trains both arms with torch seed ``seed + r`` and draws its
    random images with numpy seed ``seed + r`` (same budget, same seed within a pair). Two
    CPU runs of one configuration differ by up to ~0.03 val mIoU, as much as the effect
    sought, so the summary reports every pair's difference and their mean.
    """
    setting, result = run.setting, run.result
    unmasked = setting.unmasked_positions
    b = min(budget, len(unmasked))
    suggested = [item.index for item in result.budget[:b]]
    holdout = list(result.holdout)
    old_targets = sorted(set(unmasked) | set(holdout))
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for r in range(repeats):
        rng = np.random.default_rng(seed + r)
        random_pick = sorted(int(p) for p in rng.choice(unmasked, size=b, replace=False))
        common = sorted(set(unmasked) - set(suggested) - set(random_pick))
        cfg = dataclasses.replace(run.cfg, rounds=0, seed=run.cfg.seed + r, **(epochs or {}))
        pair: dict[str, Any] = {"seed": seed + r, "common_unmasked_images": len(common)}
        for arm, picked in (("suggested", suggested), ("random", random_pick)):
            arm_setting = with_masks(ds, setting, picked, f"{setting.name}+{arm}")
            new_targets = sorted(set(arm_setting.unmasked_positions) | set(holdout))
            lnet_state = restored_lnet(run.saved["lnet"], old_targets, new_targets)
            arm_run = run_setting(
                ds,
                arm_setting,
                cfg,
                title=f"{key}: +{b} {arm} masks, seed {seed + r}",
                holdout=holdout,
                progress=progress,
                load_stage=lambda name, s=lnet_state: s if name == "lnet" else None,
            )
            if "lnet" not in arm_run.result.resumed:
                raise RuntimeError("the budget run did not restore L-Net")
            label = label_quality(ds, setting, arm_run.result.stage_masks["pnet"], common)
            state = arm_run.result.model_state
            val = scorer.segmenter(state, delivery_cfg(cfg, state), setting)
            pair[arm] = {
                "images": picked,
                "val_miou": val["tagged"]["miou"],
                "val_miou_untagged": (val.get("untagged") or {}).get("miou"),
                "label_miou_common": label["miou"],
                "seconds": arm_run.seconds,
            }
            rows.append(
                make_row(
                    key,
                    f"L-Net + P-Net, +{b} {arm} masks"
                    + (f" (seed {seed + r})" if repeats > 1 else ""),
                    stage=f"budget_{arm}",
                    label=label,
                    val=val,
                    seconds=arm_run.seconds,
                    cumulative=arm_run.seconds,
                    budget=b,
                )
            )
        pair["suggested_minus_random"] = round_or_none(
            (pair["suggested"]["val_miou"] or 0) - (pair["random"]["val_miou"] or 0)
        )
        pairs.append(pair)

    def mean(arm: str, field: str) -> float | None:
        values = [p[arm][field] for p in pairs if p[arm][field] is not None]
        return round_or_none(float(np.mean(values))) if values else None

    arms = {
        arm: {
            "images": pairs[0][arm]["images"],
            **{f: mean(arm, f) for f in ("val_miou", "val_miou_untagged", "label_miou_common")},
        }
        for arm in ("suggested", "random")
    }
    diffs = [p["suggested_minus_random"] for p in pairs]
    summary = {
        "budget": b,
        "seed": seed,
        "repeats": repeats,
        "common_unmasked_images": pairs[0]["common_unmasked_images"],
        **arms,
        "suggested_minus_random": round_or_none(float(np.mean(diffs))),
        "suggested_minus_random_per_pair": diffs,
        "pairs": pairs,
    }
    return rows, summary
