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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import commit, machine, write_json
from bench.quality_data import (
    SETTINGS,
    Dataset,
    Setting,
    full_setting,
    load_dataset,
    semi_setting,
    split_categories,
    stratified_split,
    tags_only_setting,
    transfer_setting,
)
from bench.quality_profiles import PROFILES, Profile
from bench.quality_report import NOTES, add_pct, merge_halves, summarise, table
from bench.quality_rows import budget_rows, stage_rows
from bench.quality_runs import Run, run_setting
from bench.quality_scoring import Scorer
from bench.quality_stage_store import StageStore, StageStoreError, parse_reuse
from models.config import EPOCH_FIELDS, PipelineConfig


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
    parser.add_argument(
        "--stage-dir",
        help="keep each setting's L-Net and supervised stages here (bench/quality_stage_store)",
    )
    parser.add_argument(
        "--reuse",
        default="",
        help="restore these stages (lnet,supervised) from --stage-dir instead of training "
        "them; refused unless only later stages' knobs differ",
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
    try:
        reuse = parse_reuse(args.reuse)
    except StageStoreError as e:
        parser.error(str(e))
    if reuse and not args.stage_dir:
        parser.error("--reuse needs --stage-dir")
    store = (
        StageStore(
            Path(args.stage_dir),
            {
                "data": str(Path(args.data).resolve()),
                "max_images": profile.max_images,
                "seed": args.seed,
                "profile": args.profile,
            },
            reuse,
        )
        if args.stage_dir
        else None
    )
    started = time.perf_counter()
    code = {"commit": commit(), "commit_dirty": dirty()}  # the code this run imported

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

    if store is not None and reuse:  # refuse before the first hour-long setting runs
        try:
            for key, _ in settings_list:
                store.check(key, cfg)
        except StageStoreError as e:
            parser.error(str(e))

    rows: list[dict[str, Any]] = []
    runs: dict[str, Run] = {}
    budget_summary: dict[str, Any] | None = None
    for key, setting in settings_list:
        # The reference trains on every mask (no held-out slice); the other settings keep
        # the service's default held-out slice of their masks (it drives the rollback).
        run = run_setting(
            ds,
            setting,
            cfg,
            title=key,
            progress=progress,
            holdout=[] if key == "full" else None,
            load_stage=None if store is None else store.loader(key),
            persist=None if store is None else store.saver(key, cfg),
        )
        runs[key] = run
        setting_rows = stage_rows(ds, run, scorer, key)
        if key == "semi" and profile.budget > 0 and setting.unmasked_positions:
            extra, budget_summary = budget_rows(
                ds,
                run,
                profile.budget,
                args.seed,
                scorer,
                key,
                progress,
                profile.budget_repeats,
                epochs=profile.budget_epochs,
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
        "stages_reused": sorted(reuse),  # restored from --stage-dir, not trained here
        "profile_settings": {k: v for k, v in dataclasses.asdict(profile).items() if k != "config"},
        "settings": settings,
        "rows": rows,
        "val_predict_seconds": round(scorer.seconds, 2),
        "wall_s": round(time.perf_counter() - started, 2),
        "machine": {**machine(), "torch_threads": torch.get_num_threads()},
        **code,
        "notes": NOTES,
    }
    write_json(args.json, payload)
    return payload


if __name__ == "__main__":
    main()
