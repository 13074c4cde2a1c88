"""Runs of the quality benchmark: one models.pipeline.run_pipeline call per labeling
setting, on the setting's visible labels only (checked against the hidden masks first),
with per-stage wall times and every stage's saved state kept."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

from bench.quality_data import Dataset, Setting, check_no_hidden_masks, labeling_data
from models.config import PipelineConfig
from models.pipeline import PipelineResult, run_pipeline


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
            "calibration": dict(self.saved["lnet"].get("calibration", {})),
            **nets,
            "num_classes": self.result.model_state["num_classes"],
            "has_background": self.result.has_background,
            "weak_classes": self.result.weak_classes,
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
    persist: Callable[[str, dict], None] | None = None,
    progress: bool = True,
) -> Run:
    """run_pipeline on the setting's visible labels (of ``positions``, default all);
    ``persist`` also receives each stage it computes (bench.quality_stage_store)."""
    chosen = list(range(len(setting.train)) if positions is None else positions)
    data = labeling_data(ds, setting, chosen)
    check_no_hidden_masks(ds, setting, data, chosen)
    saved: dict[str, dict[str, Any]] = {}

    def load(name: str) -> dict | None:
        state = load_stage(name) if load_stage is not None else None
        if state is not None:
            saved[name] = state  # run_pipeline only hands back the stages it computed
        return state

    def save(name: str, state: dict) -> None:
        saved[name] = state
        if persist is not None:
            persist(name, state)

    clock = StageClock(title, pipeline_stages(cfg), progress)
    result = run_pipeline(
        data,
        cfg,
        on_progress=clock,
        save_stage=save,
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
