"""The labeling pipeline the service and the benchmark both call.

Stages: lnet → supervised → pnet → rounds → predict (pnet and the rounds only when there
are images to label or held out: with every image masked and none held out, the
supervised nets are the result).

Each finished stage is handed to ``save_stage`` as a dict of tensors, numbers, strings and
lists (torch.save-able, loadable with ``weights_only=True``); a stage that ``load_stage``
returns is restored instead of trained, which is how a re-delivered job resumes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.budget import BudgetItem, rank_for_annotation
from models.calibration import Calibration, calibrate_background
from models.config import PipelineConfig
from models.context import PipelineContext
from models.data import LabelingData
from models.errors import StopRequested
from models.inference import Prediction, label_images, predict, predict_transfer
from models.label_transfer import transfer_labels
from models.lnet import LNet
from models.loader import Batches
from models.networks import build_lnet, cpu_state
from models.pseudo import allowed_classes, fuse_labels
from models.self_training import (
    SegmenterNets,
    filter_pseudo_labels,
    predict_targets,
    run_round,
    train_segmenters,
)
from models.steps import LNetStep
from models.train import fit, resolve_device
from models.transforms import prepare_masks

__all__ = ["ImageLabel", "PipelineResult", "predict", "predict_transfer", "run_pipeline"]

StageProgress = Callable[[float, dict], None]


def _noop(*_: Any) -> None:
    return None


@dataclass
class ImageLabel:
    """The pipeline's output for one image without a human mask, at its original size."""

    index: int  # index into LabelingData
    mask: np.ndarray  # (H, W) uint8 class index, tag-constrained argmax, no 255
    confidence: np.ndarray  # (H, W) uint8, 255 = 1.0
    regions: list[dict[str, Any]]  # {"id", "bbox": [x0, y0, x1, y1], "score"}


@dataclass
class PipelineResult:
    """Everything one run delivers."""

    labels: list[ImageLabel]  # every image without a human mask, by index
    # "cam", "lnet", "supervised" (when there are human masks), "pnet", "round_k", "predict"
    metrics: dict[str, dict[str, Any]]
    # stage ("cam", "lnet", "supervised", "pnet", "round_k") → image index → original-size
    # uint8 mask; "lnet" keeps its 255 (low margin); a rolled-back round's masks are the
    # rejected model's
    stage_masks: dict[str, dict[int, np.ndarray]]
    strong_classes: list[int]
    weak_classes: list[int]
    has_background: bool
    holdout: list[int]
    model_state: dict[str, Any]  # "lnet", "s_a", "s_b", "disc", "num_classes", ...
    budget: list[BudgetItem]  # unmasked images in greedy annotation order
    rounds_run: int = 0
    rolled_back: bool = False
    resumed: list[str] = field(default_factory=list)  # stages restored from load_stage


class _Stages:
    """Load-or-run-then-save around each stage, with progress and stop checks."""

    def __init__(
        self,
        ctx: PipelineContext,
        on_progress: Callable[[str, float, dict], None],
        should_stop: Callable[[], bool],
        load_stage: Callable[[str], dict | None],
        save_stage: Callable[[str, dict], None],
    ) -> None:
        self.ctx, self.on_progress, self.should_stop = ctx, on_progress, should_stop
        self.load_stage, self.save_stage = load_stage, save_stage
        self.resumed: list[str] = []

    def run(self, name: str, compute: Callable[[StageProgress], dict[str, Any]]) -> dict[str, Any]:
        if self.should_stop():
            raise StopRequested(f"stopped before stage {name}")
        state = self.load_stage(name)
        if state is not None and list(state.get("targets", [])) == self.ctx.targets:
            self.resumed.append(name)
        else:
            self.on_progress(name, 0.0, {})
            state = compute(lambda f, m: self.on_progress(name, min(f, 0.99), m))
            state["targets"] = list(self.ctx.targets)
            self.save_stage(name, state)
        self.on_progress(name, 1.0, state["metrics"])
        return state


def _lnet_stage(
    ctx: PipelineContext, progress: StageProgress, should_stop: Callable[[], bool]
) -> dict[str, Any]:
    cfg, started = ctx.cfg, time.perf_counter()
    torch.manual_seed(cfg.seed)
    lnet = build_lnet(ctx.num_classes, cfg, ctx.device)
    fit(
        LNetStep(lnet, cfg, ctx.device),
        Batches(ctx.lnet_tensors(), cfg.batch_size, seed=cfg.seed),
        epochs=cfg.epochs_lnet,
        device=ctx.device,
        seed=cfg.seed,
        on_progress=lambda f, m: progress(0.9 * f, m),
        should_stop=should_stop,
        lr_schedule=cfg.schedule,
    )
    calibration = _calibrate(ctx, lnet)
    if calibration is not None:
        cfg = dataclasses.replace(cfg, **calibration.knobs())
    cam, coarse = transfer_labels(
        lnet,
        ctx.images[ctx.targets],
        [ctx.data.tags[i] for i in ctx.targets],
        cfg,
        has_background=ctx.has_background,
        device=ctx.device,
        valid=ctx.valid[ctx.targets],
        segments=ctx.segments,
    )
    if not ctx.train_masked:  # the decoder never saw a mask: CAMs are all there is
        coarse = cam.clone()
    state: dict[str, Any] = {"lnet": cpu_state(lnet), "cam": cam, "coarse": coarse}
    if ctx.partial:
        state["completion"] = _complete_partial(ctx, lnet, cfg)
    seconds = round(time.perf_counter() - started, 2)
    state["metrics"] = {
        "cam": ctx.evaluate(cam),
        "lnet": {**ctx.evaluate(coarse), "seconds": seconds, "completed_masks": len(ctx.partial)},
    }
    if calibration is not None:
        state["calibration"] = calibration.knobs()
        state["metrics"]["lnet"]["calibration"] = dataclasses.asdict(calibration)
    return state


def _calibrate(ctx: PipelineContext, lnet: LNet) -> Calibration | None:
    """Background scores fitted to the masked images (models/calibration.py), for a project
    with background and ``background_calibration=auto``; None otherwise."""
    masked = ctx.train_masked + ctx.holdout
    if not (ctx.has_background and masked and ctx.cfg.background_calibration == "auto"):
        return None
    held = set(ctx.holdout)
    return calibrate_background(
        lnet,
        ctx.images[masked],
        prepare_masks([ctx.data.masks[i] for i in masked], ctx.cfg.image_size),
        [ctx.data.tags[i] for i in masked],
        [i in held for i in masked],
        defaults=(ctx.cfg.cam_threshold, ctx.cfg.bg_bias),
        batch_size=ctx.cfg.batch_size,
        device=ctx.device,
    )


def _complete_partial(ctx: PipelineContext, lnet: LNet, cfg: PipelineConfig) -> Tensor:
    """L-Net's labels of the partial masks' images over each one's candidates: the tags
    its mask left out, and background where that is still open (models/partial_masks.py)."""
    partial, size = ctx.partial, cfg.image_size
    out = torch.full((len(partial), size, size), 255, dtype=torch.uint8)
    for background in (False, True):
        rows = [r for r, b in enumerate(partial.background) if b == background]
        if not rows:
            continue
        indices = [partial.indices[r] for r in rows]
        cam, coarse = transfer_labels(
            lnet,
            ctx.images[indices],
            [partial.tags[r] for r in rows],
            cfg,
            has_background=background,
            device=ctx.device,
            valid=ctx.valid[indices],
        )
        out[rows] = _weak_labels(cfg, cam, coarse)
    return out


def _weak_labels(cfg: PipelineConfig, cam: Tensor, coarse: Tensor) -> Tensor:
    """The label maps ``cfg.weak_labels`` names for categories without human masks."""
    if cfg.weak_labels == "cam":
        return cam
    if cfg.weak_labels == "agree":
        return torch.where(coarse == cam, coarse, torch.full_like(coarse, 255))
    return coarse


def _lnet_encoder(cfg: PipelineConfig, lnet: dict[str, Any]) -> dict[str, Any] | None:
    """L-Net's encoder weights for fresh segmenters (segmenter_init=lnet), else None."""
    if cfg.segmenter_init != "lnet":
        return None
    return {
        k.removeprefix("encoder."): v for k, v in lnet["lnet"].items() if k.startswith("encoder.")
    }


def _train_stage(
    name: str,
    ctx: PipelineContext,
    nets: SegmenterNets,
    tensors: dict[str, torch.Tensor],
    *,
    epochs: int,
    seed: int,
    progress: StageProgress,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """Train ``nets`` on ``tensors``, label the targets, score them on the held-out masks."""
    started = time.perf_counter()
    train_segmenters(
        ctx,
        nets,
        tensors,
        epochs=epochs,
        seed=seed,
        cross_thresholds=None,
        on_progress=lambda f, m: progress(0.9 * f, m),
        should_stop=should_stop,
    )
    pred = predict_targets(ctx, nets)
    state: dict[str, Any] = {**nets.state(), "labels": pred.labels}
    if name == "supervised" and ctx.cfg.pnet_labels == "filtered":
        state["pseudo"], state["weight"], _, _ = filter_pseudo_labels(ctx, pred)
    seconds = round(time.perf_counter() - started, 2)
    return {**state, "metrics": {name: {**ctx.evaluate(pred.labels), "seconds": seconds}}}


def _supervised_stage(
    ctx: PipelineContext,
    lnet: dict[str, Any],
    progress: StageProgress,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """S_a, S_b and Dsc trained on the human masks alone; their tag-constrained labels of
    the targets join L-Net's in P-Net's pseudo labels (models.pseudo.fuse_labels)."""
    cfg = ctx.cfg
    nets = SegmenterNets.build(ctx, seed=cfg.seed, encoder=_lnet_encoder(cfg, lnet))
    return _train_stage(
        "supervised",
        ctx,
        nets,
        ctx.supervised_tensors(),
        epochs=cfg.epochs_supervised,
        seed=cfg.seed + 5,
        progress=progress,
        should_stop=should_stop,
    )


def _pnet_stage(
    ctx: PipelineContext,
    lnet: dict[str, Any],
    supervised: dict[str, Any] | None,
    progress: StageProgress,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """S_a, S_b and Dsc on human masks + pseudo labels: L-Net's coarse masks, fused with
    the supervised stage's labels (whose nets P-Net then continues) when there is one."""
    cfg = ctx.cfg
    coarse = lnet["coarse"]
    if supervised is None:
        nets = SegmenterNets.build(ctx, seed=cfg.seed, encoder=_lnet_encoder(cfg, lnet))
        weight = (coarse != 255).float()
    else:
        coarse = _weak_labels(cfg, lnet["cam"], coarse)
        nets = SegmenterNets.build(ctx, supervised)
        if "pseudo" in supervised:  # pnet_labels=filtered
            sup, sup_weight = supervised["pseudo"], supervised["weight"]
            fused = fuse_labels(coarse, sup, ctx.learned_classes)
            from_sup = (fused == sup) & (sup != 255)
            taught = torch.isin(fused.long(), torch.tensor(ctx.learned_classes))
            coarse = torch.where(~from_sup & taught, torch.full_like(fused, 255), fused)
            weight = torch.where(from_sup, sup_weight, (coarse != 255).float())
        else:
            coarse = fuse_labels(coarse, supervised["labels"], ctx.learned_classes)
            weight = (coarse != 255).float()
    return _train_stage(
        "pnet",
        ctx,
        nets,
        ctx.segmenter_tensors(coarse, weight),
        epochs=cfg.epochs_pnet,
        seed=cfg.seed + 4,
        progress=progress,
        should_stop=should_stop,
    )


def _round_stage(
    ctx: PipelineContext,
    previous: dict[str, Any],
    previous_miou: float | None,
    round_index: int,
    progress: StageProgress,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    nets = SegmenterNets.build(ctx, previous)  # warm start
    labels, metrics = run_round(
        ctx,
        nets,
        round_index=round_index,
        previous_miou=previous_miou,
        on_progress=progress,
        should_stop=should_stop,
    )
    return {**nets.state(), "labels": labels, "metrics": {f"round_{round_index}": metrics}}


def _holdout_scores_every_tag(ctx: PipelineContext) -> bool:
    """Whether every held-out mask paints all of its image's tags (none is partial)."""
    data = ctx.data
    for i in ctx.holdout:
        mask = data.masks[i]
        assert mask is not None
        if not data.tags[i] <= {int(k) for k in np.unique(mask)}:
            return False
    return bool(ctx.holdout)


def _worse(report: dict[str, Any], before: dict[str, Any], tolerance: float) -> bool:
    """Held-out mIoU fell by more than ``tolerance`` (unknown: not worse)."""
    now, then = report.get("miou_gt"), before.get("miou_gt")
    return now is not None and then is not None and now < then - tolerance


def _predict_stage(
    ctx: PipelineContext,
    nets_state: dict[str, Any],
    class_quality: dict[int, float],
    progress: StageProgress,
) -> dict[str, Any]:
    started = time.perf_counter()
    nets = SegmenterNets.build(ctx, nets_state)
    positions = ctx.unmasked_positions
    indices = [ctx.targets[p] for p in positions]
    preds: list[Prediction] = label_images(
        [nets.s_a, nets.s_b],
        nets.disc,
        ctx.images[indices],
        allowed_classes(ctx.tags[indices], ctx.has_background),
        [ctx.shapes[i] for i in indices],
        [ctx.data.images[i].shape[:2] for i in indices],
        ctx.segments[positions],
        batch_size=ctx.cfg.batch_size,
        device=ctx.device,
        on_progress=lambda f: progress(0.9 * f, {}),
    )
    budget = rank_for_annotation(
        indices,
        [p.signals for p in preds],
        [ctx.data.tags[i] for i in indices],
        ctx.data.mask_counts(),
        min_masks=ctx.cfg.min_masks_per_class,
        diversity=ctx.cfg.budget_diversity,
        class_quality=class_quality if ctx.holdout else None,
    )
    return {
        "masks": [torch.from_numpy(p.mask) for p in preds],
        "confidence": [torch.from_numpy(p.confidence) for p in preds],
        "regions": [p.regions for p in preds],
        "budget": [b.to_dict() for b in budget],
        "metrics": {
            "predict": {"images": len(preds), "seconds": round(time.perf_counter() - started, 2)}
        },
    }


def run_pipeline(
    data: LabelingData,
    cfg: PipelineConfig,
    *,
    on_progress: Callable[[str, float, dict], None] = _noop,
    should_stop: Callable[[], bool] = lambda: False,
    load_stage: Callable[[str], dict | None] = lambda name: None,
    save_stage: Callable[[str, dict], None] = _noop,
    holdout: list[int] | None = None,
) -> PipelineResult:
    """Run (or resume) every stage and gather the result.

    Args:
        data: images, tags and human masks.
        cfg: the knobs.
        on_progress: (stage, fraction within the stage 0..1, metrics), monotone per stage.
        should_stop: asked between batches and stages; True raises StopRequested.
        load_stage: a saved stage's state, or None to run it.
        save_stage: receives each finished stage's state.
        holdout: human-masked image indices kept out of training to score quality
            (default: a seeded ``cfg.holdout_fraction`` slice).
    """
    ctx = PipelineContext.build(data, cfg, resolve_device(cfg.device), holdout)
    stages = _Stages(ctx, on_progress, should_stop, load_stage, save_stage)
    lnet = stages.run("lnet", lambda p: _lnet_stage(ctx, p, should_stop))
    completion = lnet.get("completion")  # None from a stage saved without it
    if completion is not None and len(completion) == len(ctx.partial):
        ctx.use_completed(completion)
    supervised = None
    if ctx.train_masked and cfg.epochs_supervised > 0:
        supervised = stages.run(
            "supervised", lambda p: _supervised_stage(ctx, lnet, p, should_stop)
        )
    metrics = dict(lnet["metrics"])
    stage_labels = {"cam": lnet["cam"], "lnet": lnet["coarse"]}
    if supervised is not None:
        metrics.update(supervised["metrics"])
        stage_labels["supervised"] = supervised["labels"]
    if supervised is not None and not ctx.targets:
        # Every image is masked and none held out: nothing for P-Net or a round to label,
        # so they could only re-train on the same masks (on MSRC full they cost 0.769 ->
        # 0.748 val mIoU). The supervised nets are the run's result.
        return _result(
            ctx,
            lnet,
            supervised,
            supervised["metrics"]["supervised"],
            stages,
            metrics,
            stage_labels,
            0,
            False,
        )
    current = stages.run("pnet", lambda p: _pnet_stage(ctx, lnet, supervised, p, should_stop))
    metrics.update(current["metrics"])
    stage_labels["pnet"] = current["labels"]
    miou, rounds_run, rolled_back = metrics["pnet"]["miou_gt"], 0, False
    kept = metrics["pnet"]  # held-out report of the nets the run delivers
    if (
        supervised is not None
        and _holdout_scores_every_tag(ctx)
        and _worse(metrics["pnet"], metrics["supervised"], cfg.pnet_tolerance)
    ):
        # P-Net's pseudo labels made the held-out masks worse than the human masks alone
        # did: go on from the supervised nets, as a round that lowers held-out mIoU is undone.
        # Only when the held-out masks paint every tag of their images: partial ones cannot
        # score the tag-only categories P-Net adds (measured on MSRC transfer: undone at
        # val 0.431, leaving the supervised nets' 0.381).
        metrics["pnet"] = {**metrics["pnet"], "rolled_back": True}
        current, kept = supervised, metrics["supervised"]
        miou = kept["miou_gt"]
    for r in range(1, cfg.rounds + 1):
        previous, previous_miou = current, miou
        current = stages.run(
            f"round_{r}",
            lambda p, prev=previous, m=previous_miou, r=r: _round_stage(
                ctx, prev, m, r, p, should_stop
            ),
        )
        report = current["metrics"][f"round_{r}"]
        metrics[f"round_{r}"], stage_labels[f"round_{r}"] = report, current["labels"]
        rounds_run = r
        if report["rolled_back"]:
            rolled_back = True
            break
        miou, kept = report["miou_gt"], report
    return _result(ctx, lnet, current, kept, stages, metrics, stage_labels, rounds_run, rolled_back)


def _result(
    ctx: PipelineContext,
    lnet: dict[str, Any],
    current: dict[str, Any],
    kept: dict[str, Any],
    stages: _Stages,
    metrics: dict[str, dict[str, Any]],
    stage_labels: dict[str, torch.Tensor],
    rounds_run: int,
    rolled_back: bool,
) -> PipelineResult:
    """Predict with the delivered nets (``current``, held-out report ``kept``) and gather
    the run's result."""
    quality = {int(c): float(v) for c, v in kept["iou"].items()}
    final = stages.run("predict", lambda p: _predict_stage(ctx, current, quality, p))
    metrics.update(final["metrics"])
    positions = ctx.unmasked_positions
    return PipelineResult(
        labels=[
            ImageLabel(ctx.targets[p], m.numpy(), c.numpy(), list(r))
            for p, m, c, r in zip(
                positions, final["masks"], final["confidence"], final["regions"], strict=True
            )
        ],
        metrics=metrics,
        stage_masks={
            name: {ctx.targets[p]: ctx.to_original(p, labels[p]) for p in positions}
            for name, labels in stage_labels.items()
        },
        strong_classes=ctx.strong,
        weak_classes=ctx.weak,
        has_background=ctx.has_background,
        holdout=ctx.holdout,
        model_state={
            "lnet": lnet["lnet"],
            "calibration": dict(lnet.get("calibration", {})),
            **{n: current[n] for n in ("s_a", "s_b", "disc")},
            "num_classes": ctx.num_classes,
            "has_background": ctx.has_background,
            "config": ctx.cfg.to_dict(),
        },
        budget=[BudgetItem(b["index"], b["score"], b["reasons"]) for b in final["budget"]],
        rounds_run=rounds_run,
        rolled_back=rolled_back,
        resumed=stages.resumed,
    )
