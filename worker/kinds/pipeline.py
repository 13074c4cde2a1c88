"""`pipeline` job: the labeling run (L-Net → P-Net → self-training rounds → predict → write)."""

from __future__ import annotations

import dataclasses
import io
import re
from typing import Any

import torch

from models.config import PipelineConfig
from models.pipeline import PipelineResult, run_pipeline
from worker.dataset import load_project
from worker.job_context import JobContext
from worker.kinds import InvalidParams, JobKind
from worker.writeback import write_model_versions, write_pseudo_masks

BUDGET_KEEP = 200


CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def validate(params: dict[str, Any]) -> dict[str, Any]:
    try:
        PipelineConfig.from_params(params)
    except (ValueError, TypeError) as e:
        raise InvalidParams(f"Invalid pipeline params: {e}") from e
    name = params.get("encoder_checkpoint") or ""
    if name and not CHECKPOINT_NAME.fullmatch(name):
        raise InvalidParams(
            "encoder_checkpoint must be the file name of a checkpoint in the workers' "
            "<data dir>/checkpoints folder, not a path."
        )
    return dict(params)


def _config(jc: JobContext) -> PipelineConfig:
    """The run's config; a checkpoint name becomes a path inside <data dir>/checkpoints."""
    cfg = PipelineConfig.from_params(jc.params)
    if cfg.encoder_checkpoint:
        path = jc.ctx.settings.data_dir / "checkpoints" / cfg.encoder_checkpoint
        if not path.is_file():
            raise InvalidParams(f"No checkpoint named {cfg.encoder_checkpoint!r} in {path.parent}.")
        cfg = dataclasses.replace(cfg, encoder_checkpoint=str(path))
    return cfg


def stage_spans(rounds: int) -> dict[str, tuple[float, float]]:
    """Overall progress span of each stage (training stages take most of the time)."""
    spans = {
        "load": (0.0, 0.04),
        "lnet": (0.04, 0.22),
        "supervised": (0.22, 0.35),
        "pnet": (0.35, 0.55),
    }
    lo, hi = 0.55, 0.9
    for r in range(1, rounds + 1):
        spans[f"round_{r}"] = (lo + (hi - lo) * (r - 1) / rounds, lo + (hi - lo) * r / rounds)
    spans["predict"] = (0.9 if rounds else 0.55, 0.95)
    spans["write"] = (0.95, 1.0)
    return spans


def _serialise(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def run(jc: JobContext) -> dict[str, Any]:
    cfg = _config(jc)
    rep = jc.reporter
    spans = stage_spans(cfg.rounds)
    rep.stage("load", *spans["load"])
    project = load_project(
        jc.ctx, jc.project_id, on_progress=rep.progress, check_cancel=jc.check_cancel
    )
    data = project.data
    if len(data) == 0:
        raise InvalidParams("The project has no images to label.")
    if not data.masked:
        rep.event("no human masks: labels come from tags alone (CAMs)", level="warning")
    rep.event(
        "loaded project",
        data={"images": len(data), "human_masks": len(data.masked), "config": cfg.to_dict()},
    )
    current: list[str] = []

    def on_progress(stage: str, fraction: float, metrics: dict[str, Any]) -> None:
        if not current or current[-1] != stage:
            current.append(stage)
            rep.stage(stage, *spans.get(stage, spans["predict"]))
        rep.progress(
            fraction,
            {stage: metrics} if fraction >= 1.0 and metrics else None,
            force=fraction >= 1.0,
        )

    def load_stage(name: str) -> dict[str, Any] | None:
        raw = jc.checkpoints.load(name)
        if raw is None:
            return None
        rep.event(f"stage {name} restored from checkpoint")
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)

    result: PipelineResult = run_pipeline(
        data,
        cfg,
        on_progress=on_progress,
        should_stop=jc.should_stop,
        load_stage=load_stage,
        save_stage=lambda name, st: jc.checkpoints.save(name, _serialise(st)),
    )
    rep.stage("write", *spans["write"])
    names = project.class_names
    summary = {
        "images": len(data),
        "human_masks": len(data.masked),
        "strong": [names.get(i, str(i)) for i in result.strong_classes],
        "weak": [names.get(i, str(i)) for i in result.weak_classes],
        "has_background": result.has_background,
        "rounds_run": result.rounds_run,
        "rolled_back": result.rolled_back,
        "resumed_stages": result.resumed,
        "holdout_image_ids": [project.image_ids[i] for i in result.holdout],
    }
    versions = write_model_versions(
        jc.ctx, jc.project_id, jc.job_id, result.model_state, {"stages": result.metrics, **summary}
    )
    jc.check_cancel()
    written = write_pseudo_masks(
        jc.ctx,
        jc.project_id,
        jc.job_id,
        result.labels,
        project.image_ids,
        versions.get("s_a"),
        on_progress=rep.progress,
    )
    budget = [
        {**item.to_dict(), "image_id": project.image_ids[item.index]}
        for item in result.budget[:BUDGET_KEEP]
    ]
    return {
        **result.metrics,
        **summary,
        "pseudo_masks_written": written,
        "model_versions": versions,
        "budget": budget,
    }


KIND = JobKind("pipeline", validate, run, clear_checkpoints=True)
