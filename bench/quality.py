"""Quality benchmark: how good are tag2mask's pseudo-masks and networks per labeling setting.

    python bench/quality.py --data /work/shared/data/msrc_v2 --profile cpu --json out.json

Works on any folder holding images/, masks/ (class index, 255 = unlabelled) and
classes.json. A seeded train/val split (every category in val); the training images are
labelled four ways (bench/quality_data.py):

    transfer   half the categories painted, the other half tags only
    semi       full masks on 1/8 of the training images, tags on the rest
    tags_only  no mask at all
    full       every mask: the fully supervised reference

Each setting is ONE call of models.pipeline.run_pipeline, the function the service's
`pipeline` job calls; its stages give the rows CAM, L-Net, supervised only (S_a+S_b on the
human masks alone, the pipeline's own stage before P-Net), L-Net + P-Net and one per
self-training round (each stage's saved state is the network of that row). The val
images are predicted with the same models.pipeline.predict / predict_transfer a
predict-only job uses. Label quality is scored on the training images that had no mask,
against their hidden masks, which no network ever sees (checked before every run).

Markdown table on stdout, progress on stderr, every figure in --json.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import commit, machine, markdown_table, write_json
from bench.quality_data import (
    SETTINGS,
    Dataset,
    Setting,
    check_no_hidden_masks,
    full_setting,
    labeling_data,
    load_dataset,
    semi_setting,
    split_categories,
    stratified_split,
    tags_only_setting,
    transfer_setting,
    with_masks,
)
from models.config import EPOCH_FIELDS, PipelineConfig
from models.metrics import evaluate
from models.partial_masks import partial_images
from models.pipeline import PipelineResult, predict, predict_transfer, run_pipeline
from models.transforms import labels_to_original, resized_shape


@dataclass(frozen=True)
class Profile:
    """Benchmark knobs beside the pipeline's own (``config``)."""

    config: dict[str, Any]
    halves: int = 1  # transfer settings: 1 = one seeded half strong, 2 = also its complement
    budget: int = 32  # extra masks in the budget rows
    budget_repeats: int = 1  # seed pairs of the budget arms (see budget_rows)
    max_images: int | None = None  # seeded random subset of the folder
    val_fraction: float = 0.2
    semi_fraction: float = 1 / 8
    untagged: bool = True  # also predict val without tags (every category allowed)
    note: str = ""


PROFILES: dict[str, Profile] = {
    # Smoke run: minutes on 2 CPU cores, numbers mean nothing.
    "quick": Profile(
        config=dict(
            image_size=32,
            width=8,
            depth=3,
            batch_size=16,
            epochs_lnet=2,
            epochs_pnet=1,
            epochs_round=1,
            rounds=1,
            slic_segments=16,
        ),
        budget=8,
        max_images=240,
        note="smoke run: 240 images at 32 px, 1-2 epochs per stage",
    ),
    # The whole table within 60 minutes on a 2-core CPU (about 45 minutes of compute
    # when the machine is quiet; see CPU_PROFILE_ESTIMATE_S below for the arithmetic).
    "cpu": Profile(
        config=dict(
            image_size=96,
            width=16,
            depth=3,
            batch_size=16,
            epochs_lnet=10,
            epochs_supervised=6,
            epochs_pnet=10,
            epochs_round=3,
            rounds=2,
        ),
        budget=32,
        budget_repeats=2,
        note="96 px, width 16, depth 3 (0.19 M-parameter segmenter), batch 16, L-Net 10 / "
        "supervised 6 / P-Net 10 / 2 rounds x 3 epochs, one seeded half for transfer, "
        "budget 32 masks, two seed pairs",
    ),
    # A lent GPU: full resolution (MSRC's longer side is 320 px), wider, both halves.
    "gpu": Profile(
        config=dict(
            image_size=320,
            width=32,
            depth=4,
            batch_size=16,
            epochs_lnet=40,
            epochs_pnet=40,
            epochs_round=10,
            rounds=3,
            slic_segments=256,
            device="cuda",
        ),
        halves=2,
        budget=64,
        note="320 px, width 32, depth 4, L-Net 40 / P-Net 40 / 3 rounds x 10 epochs, "
        "both seeded halves for transfer",
    ),
}

# How the cpu profile fits in 60 minutes (2-core machine, 2 torch threads; MSRC-v2: 473
# train / 118 val images, so 30 batches of 16 per epoch). Per-batch costs at 96 px, width 16,
# best of 5 (bench micro-timings), and a 1-epoch run of the whole profile (--set epochs=1:
# 514 s wall) for the per-stage overheads (targets' superpixels, ensemble passes, predict):
#   L-Net step 0.15 s (all images masked) .. 0.06 s (1/8 masked)  -> 1.5-4.5 s / epoch
#   P-Net / round step (S_a + S_b + Dsc) 0.49 s                     -> 14.7 s / epoch
#   ensemble inference 0.21 s / 16 images, predict at original size 0.37 s / 16 images
# Runs (L-Net 10, supervised 6, P-Net 10, 2 rounds x 3; human masks half of each
# supervised/P-Net/round epoch in semi): measured 2,084 s = 35 minutes in all on a quiet
# machine (full 337 s, semi 468 s, its two budget arms 303 + 301 s, transfer 288 s,
# tags_only 290 s, val predictions and loading the rest; a round that is rolled back ends
# the run early). Two seed pairs of budget arms add two more (~600 s): ~45 minutes. A second
# torch process on the two cores can slow this 2-3x.
CPU_PROFILE_ESTIMATE_S = 2700

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


def _round(value: Any, digits: int = 4) -> Any:
    return None if value is None else round(float(value), digits)


# ---------------------------------------------------------------------------- scoring


def score(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    num_classes: int,
    strong: Sequence[int],
    weak: Sequence[int],
) -> dict[str, Any]:
    """mIoU all / strong / weak of label maps (255 in a prediction counts as a miss), plus
    coverage (share of labelled ground-truth pixels the maps give a class) and the mIoU
    over the pixels they do label (``miou_labelled``; differs only where maps hold 255)."""
    if not preds:
        return {"miou": None, "miou_strong": None, "miou_weak": None, "coverage": None}
    report = evaluate(list(preds), list(gts), num_classes + 1, strong, weak)
    labelled = sum(int((g != 255).sum()) for g in gts)
    covered = sum(int(((g != 255) & (p != 255)).sum()) for p, g in zip(preds, gts, strict=True))
    out = {
        "miou": _round(report["miou"]),
        "miou_strong": _round(report["miou_strong"]),
        "miou_weak": _round(report["miou_weak"]),
        "coverage": _round(covered / labelled) if labelled else None,
        "miou_labelled": _round(report["miou"]),
        "iou": report["iou"],
    }
    if covered < labelled:
        only = [
            np.where(p == 255, 255, g).astype(np.uint8) for p, g in zip(preds, gts, strict=True)
        ]
        out["miou_labelled"] = _round(
            evaluate(list(preds), only, num_classes + 1, strong, weak)["miou"]
        )
    return out


class Scorer:
    """Val predictions of a model state, scored against the full val masks."""

    def __init__(self, ds: Dataset, val: Sequence[int], untagged: bool) -> None:
        self.ds, self.val, self.untagged = ds, list(val), untagged
        self.images = [ds.images[i] for i in val]
        self.tags = [ds.tags[i] for i in val]
        self.gts = [ds.masks[i] for i in val]
        self.all_tags = [frozenset(range(1, ds.num_classes + 1))] * len(self.val)
        self.seconds = 0.0

    def _score(self, preds: Sequence[np.ndarray], setting: Setting) -> dict[str, Any]:
        return score(preds, self.gts, self.ds.num_classes, setting.strong, setting.weak)

    def segmenter(
        self, state: dict[str, Any], cfg: PipelineConfig, setting: Setting
    ) -> dict[str, Any]:
        """Val scores of S_a+S_b: with the val tags, and without (every category allowed)."""
        started = time.perf_counter()
        out = {
            "tagged": self._score(
                [p.mask for p in predict(state, self.images, self.tags, cfg)], setting
            )
        }
        if self.untagged:
            out["untagged"] = self._score(
                [p.mask for p in predict(state, self.images, self.all_tags, cfg)], setting
            )
        self.seconds += time.perf_counter() - started
        return out

    def transfer(
        self, state: dict[str, Any], cfg: PipelineConfig, setting: Setting
    ) -> dict[str, dict[str, Any]]:
        """Val scores of L-Net's CAM baseline and coarse masks (val tags given)."""
        started = time.perf_counter()
        cam, coarse = predict_transfer(state, self.images, self.tags, cfg)
        self.seconds += time.perf_counter() - started
        return {
            "cam": {"tagged": self._score(cam, setting)},
            "lnet": {"tagged": self._score(coarse, setting)},
        }


# ---------------------------------------------------------------------------- runs


class StageClock:
    """on_progress for run_pipeline: per-stage wall times and a tqdm bar on stderr."""

    def __init__(self, title: str, stages: Sequence[str], enabled: bool) -> None:
        self.stages = list(stages)
        self.started = time.perf_counter()
        self.begin: dict[str, float] = {}
        self.end: dict[str, float] = {}
        self.current = ""
        self.bar = tqdm(
            total=len(self.stages),
            desc=title,
            file=sys.stderr,
            leave=True,
            disable=not enabled,
            mininterval=0.5 if sys.stderr.isatty() else 30,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}",
        )

    def __call__(self, stage: str, fraction: float, metrics: dict) -> None:
        now = time.perf_counter() - self.started
        self.begin.setdefault(stage, now)
        if fraction >= 1.0:
            self.end[stage] = now
        position = self.stages.index(stage) if stage in self.stages else len(self.stages) - 1
        target = min(len(self.stages), position + min(fraction, 1.0))
        if stage != self.current:
            self.current = stage
            self.bar.set_postfix_str(stage, refresh=False)
        self.bar.update(target - self.bar.n)  # redraws at most every mininterval

    def close(self) -> float:
        self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()
        return time.perf_counter() - self.started

    def seconds(self, stage: str) -> float | None:
        if stage not in self.end:
            return None
        return round(self.end[stage] - self.begin[stage], 2)

    def cumulative(self, stage: str) -> float | None:
        return round(self.end[stage], 2) if stage in self.end else None


@dataclass
class Run:
    """One run_pipeline call and what the benchmark kept of it."""

    setting: Setting
    positions: list[int]  # positions in setting.train given to the run, in data order
    result: PipelineResult
    saved: dict[str, dict[str, Any]]
    clock: StageClock
    seconds: float
    cfg: PipelineConfig

    def model_state(self, stage: str) -> dict[str, Any]:
        """A predict()-able state of the nets after ``stage``."""
        nets = (
            {}
            if stage in ("cam", "lnet")
            else {n: self.saved[stage][n] for n in ("s_a", "s_b", "disc")}
        )
        return {
            "lnet": self.saved["lnet"]["lnet"],
            **nets,
            "num_classes": self.result.model_state["num_classes"],
            "has_background": self.result.has_background,
            "config": self.cfg.to_dict(),
        }


def pipeline_stages(cfg: PipelineConfig) -> list[str]:
    return [
        "lnet",
        "supervised",
        "pnet",
        *[f"round_{r}" for r in range(1, cfg.rounds + 1)],
        "predict",
    ]


def run_setting(
    ds: Dataset,
    setting: Setting,
    cfg: PipelineConfig,
    *,
    title: str,
    positions: Sequence[int] | None = None,
    holdout: list[int] | None = None,
    load_stage: Callable[[str], dict | None] | None = None,
    progress: bool = True,
) -> Run:
    """run_pipeline on the setting's visible labels (of ``positions``, default all)."""
    chosen = list(range(len(setting.train)) if positions is None else positions)
    data = labeling_data(ds, setting, chosen)
    check_no_hidden_masks(ds, setting, data, chosen)
    saved: dict[str, dict[str, Any]] = {}

    def load(name: str) -> dict | None:
        state = load_stage(name) if load_stage is not None else None
        if state is not None:
            saved[name] = state  # run_pipeline only hands back the stages it computed
        return state

    clock = StageClock(title, pipeline_stages(cfg), progress)
    result = run_pipeline(
        data,
        cfg,
        on_progress=clock,
        save_stage=lambda name, state: saved.__setitem__(name, state),
        load_stage=load,
        holdout=holdout,
    )
    seconds = clock.close()
    return Run(setting, chosen, result, saved, clock, round(seconds, 2), cfg)


def restored_lnet(
    saved_lnet: dict[str, Any], old_targets: Sequence[int], new_targets: Sequence[int]
) -> dict[str, Any]:
    """The lnet stage of a finished run, cut down to a run whose targets are a subset (some
    tag-only images got masks): run_pipeline then restores it instead of training L-Net."""
    row = {t: r for r, t in enumerate(old_targets)}
    keep = torch.tensor([row[t] for t in new_targets], dtype=torch.long)
    return {
        **saved_lnet,
        "cam": saved_lnet["cam"][keep],
        "coarse": saved_lnet["coarse"][keep],
        "targets": list(new_targets),
    }


# ---------------------------------------------------------------------------- rows


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


def stage_rows(ds: Dataset, run: Run, scorer: Scorer, key: str) -> list[dict[str, Any]]:
    """CAM, L-Net, P-Net and round rows of one pipeline run (positions = all of train)."""
    result, setting, cfg = run.result, run.setting, run.cfg
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
                holdout_miou=_round(held.get("miou")),
                rolled_back=bool(held.get("rolled_back", False)),
            )
        )
    # The final network: the last segmenter stage that was kept (a rolled-back round
    # restores the previous stage's nets, which the run then delivers).
    final = [
        r for r in rows if r["stage"] not in ("cam", "lnet", "supervised") and not r["rolled_back"]
    ][-1]
    final["final"] = True
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
            "partial masks: unpainted pixels completed (left-out tags)",
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
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Spend ``budget`` masks on the run's suggested images vs on random tag-only images,
    re-running the supervised and P-Net stages (L-Net restored, no rounds) for each; both
    scored on val and on the images left tag-only in both arms.

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
        cfg = dataclasses.replace(run.cfg, rounds=0, seed=run.cfg.seed + r)
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
            val = scorer.segmenter(arm_run.result.model_state, cfg, setting)
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
        pair["suggested_minus_random"] = _round(
            (pair["suggested"]["val_miou"] or 0) - (pair["random"]["val_miou"] or 0)
        )
        pairs.append(pair)

    def mean(arm: str, field: str) -> float | None:
        values = [p[arm][field] for p in pairs if p[arm][field] is not None]
        return _round(float(np.mean(values))) if values else None

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
        "suggested_minus_random": _round(float(np.mean(diffs))),
        "suggested_minus_random_per_pair": diffs,
        "pairs": pairs,
    }
    return rows, summary


# ---------------------------------------------------------------------------- main


def build_settings(
    ds: Dataset, train: list[int], profile: Profile, seed: int
) -> list[tuple[str, Setting]]:
    """(key, setting) in run order: full first (the reference), semi, transfer, tags_only."""
    halves = split_categories(ds.categories(train), seed)
    out = [
        ("full", full_setting(ds, train)),
        ("semi", semi_setting(ds, train, profile.semi_fraction, seed)),
    ]
    for h in range(profile.halves):
        name = "transfer" if h == 0 else f"transfer_h{h}"
        s = transfer_setting(ds, train, halves[h], name=name)
        s.info["half"] = h
        out.append((name, s))
    out.append(("tags_only", tags_only_setting(ds, train)))
    return out


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


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects NAME=VALUE, got {pair!r}")
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        out[name.strip()] = value
    return out


def dirty() -> bool | None:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "models", "worker", "bench"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.strip())


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="folder with images/, masks/, classes.json")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("--seed", type=int, default=0, help="split, halves, masks, budget")
    parser.add_argument("--max-images", type=int, help="seeded random subset of the folder")
    parser.add_argument("--halves", type=int, choices=(1, 2), help="transfer halves to run")
    parser.add_argument("--budget", type=int, help="masks spent in the budget rows (0 = skip)")
    parser.add_argument(
        "--budget-repeats", type=int, help="seed pairs of the budget arms (default: profile's)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a PipelineConfig knob (e.g. --set epochs=1); repeatable",
    )
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help="comma-separated subset of "
        + ",".join(SETTINGS)
        + " (full always runs: it is the reference)",
    )
    parser.add_argument(
        "--full-val",
        type=float,
        help="tuning runs: skip the full setting and take this val mIoU (with tags) as the "
        "reference of %% of full",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    profile = PROFILES[args.profile]
    profile = dataclasses.replace(
        profile,
        halves=args.halves or profile.halves,
        budget=profile.budget if args.budget is None else args.budget,
        budget_repeats=args.budget_repeats or profile.budget_repeats,
        max_images=args.max_images if args.max_images is not None else profile.max_images,
    )
    overrides = parse_overrides(args.overrides)
    base = {**profile.config, "seed": args.seed}
    if "epochs" in overrides:  # --set epochs=N beats the profile's per-stage epochs
        base = {k: v for k, v in base.items() if k not in EPOCH_FIELDS}
    try:
        cfg = PipelineConfig.from_params({**base, **overrides})
    except ValueError as e:
        parser.error(str(e))
    if cfg.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            f"profile {args.profile} runs on CUDA, which is not available here "
            "(--set device=cpu forces the CPU)"
        )
    progress = not args.no_progress
    started = time.perf_counter()

    ds = load_dataset(args.data, profile.max_images, args.seed)
    if "background" not in overrides and not any((m == 0).any() for m in ds.masks):
        # The label set has no background class (MSRC): a fact about the dataset, stated
        # like a project owner would; no mask is used for training by this.
        cfg = dataclasses.replace(cfg, background="absent")
    train, val = stratified_split(ds.tags, profile.val_fraction, args.seed)
    assert not set(train) & set(val)
    scorer = Scorer(ds, val, profile.untagged)
    wanted = {s.strip() for s in args.settings.split(",") if s.strip()}
    if args.full_val is None:
        wanted.add("full")
    unknown = wanted - set(SETTINGS)
    if unknown:
        parser.error(f"unknown setting(s): {', '.join(sorted(unknown))}")
    settings_list = [
        (k, s)
        for k, s in build_settings(ds, train, profile, args.seed)
        if k.split("_h")[0] in wanted
    ]
    print(
        f"{len(ds)} images ({len(train)} train / {len(val)} val), {ds.num_classes} "
        f"categories, profile {args.profile}: {cfg.to_dict()}",
        file=sys.stderr,
    )

    rows: list[dict[str, Any]] = []
    runs: dict[str, Run] = {}
    budget_summary: dict[str, Any] | None = None
    for key, setting in settings_list:
        # The reference trains on every mask (no held-out slice); the other settings keep
        # the service's default held-out slice of their masks (it drives the rollback).
        run = run_setting(
            ds, setting, cfg, title=key, progress=progress, holdout=[] if key == "full" else None
        )
        runs[key] = run
        setting_rows = stage_rows(ds, run, scorer, key)
        if key == "semi" and profile.budget > 0 and setting.unmasked_positions:
            extra, budget_summary = budget_rows(
                ds, run, profile.budget, args.seed, scorer, key, progress, profile.budget_repeats
            )
            setting_rows += extra
        rows += setting_rows

    if args.full_val is None:
        full_final = next(r for r in rows if r["setting"] == "full" and r.get("final"))
        full_val = {"tagged": full_final["val_miou"], "untagged": full_final["val_miou_untagged"]}
    else:
        full_val = {"tagged": args.full_val, "untagged": None}
    add_pct(rows, full_val)
    settings = {
        key: summarise(key, rows, full_val, setting, runs[key]) for key, setting in settings_list
    }
    merge_halves(settings)
    if budget_summary is not None:
        settings["semi"]["budget"] = budget_summary

    print(table(rows))
    payload = {
        "benchmark": "quality",
        "profile": args.profile,
        "profile_note": profile.note,
        "data": str(Path(args.data).resolve()),
        "seed": args.seed,
        "split": {
            "train": len(train),
            "val": len(val),
            "val_fraction": profile.val_fraction,
            "val_ids": [ds.ids[i] for i in val],
            "categories": ds.categories(),
            "class_names": ds.class_names,
        },
        "config": cfg.to_dict(),
        "profile_settings": {k: v for k, v in dataclasses.asdict(profile).items() if k != "config"},
        "settings": settings,
        "rows": rows,
        "val_predict_seconds": round(scorer.seconds, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "machine": {**machine(), "torch_threads": torch.get_num_threads()},
        "commit": commit(),
        "commit_dirty": dirty(),
        "notes": NOTES,
    }
    write_json(args.json, payload)
    return payload


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


if __name__ == "__main__":
    main()
