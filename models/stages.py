"""The pipeline's stages, each a function from the run's context (and the states of the
stages before it) to a state dict that models.pipeline saves and can restore: lnet →
supervised → pnet → round_k → predict."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from models.budget import rank_for_annotation
from models.calibration import Calibration, calibrate_background
from models.cam_prior_fit import fit_weight
from models.config import PipelineConfig
from models.context import PipelineContext
from models.inference import Prediction, label_images
from models.label_transfer import transfer_labels
from models.lnet import LNet
from models.loader import Batches
from models.networks import build_lnet, cpu_state
from models.partial_masks import keep_classes
from models.pseudo import allowed_classes, fuse_labels, named_classes
from models.self_training import (
    SegmenterNets,
    filter_pseudo_labels,
    predict_targets,
    run_round,
    train_segmenters,
)
from models.steps import LNetStep
from models.train import fit
from models.transforms import prepare_masks

StageProgress = Callable[[float, dict], None]


def lnet_stage(
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
    if ctx.partial and cfg.partial_masks == "complete":
        state["completion"] = _complete_partial(ctx, lnet, cfg)
    elif ctx.partial and cfg.partial_masks == "mixed":  # the rest keep their candidates
        state["completion"] = keep_classes(
            _complete_partial(ctx, lnet, cfg), ctx.partial.entangled()
        )
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
        cam_rule=ctx.cfg.cam_rule,
        valid=ctx.valid[masked],
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


def _starting_nets(ctx: PipelineContext, lnet: dict[str, Any]) -> SegmenterNets:
    """Untrained S_a, S_b and Dsc, the same for every stage that starts from scratch (the
    supervised stage, a P-Net without one or with pnet_start=fresh): seeded cfg.seed and
    from L-Net's encoder when segmenter_init says so."""
    return SegmenterNets.build(ctx, seed=ctx.cfg.seed, encoder=_lnet_encoder(ctx.cfg, lnet))


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
    continued: bool = False,
    teaches: bool = False,
) -> dict[str, Any]:
    """Train ``nets`` on ``tensors``, label the targets, score them on the held-out masks;
    a stage that ``teaches`` a P-Net also keeps its filtered labels (pnet_labels=filtered)."""
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
        continued=continued,
    )
    pred = predict_targets(ctx, nets)
    state: dict[str, Any] = {**nets.state(), "labels": pred.labels}
    if teaches and ctx.cfg.pnet_labels == "filtered":
        state["pseudo"], state["weight"], _, _ = filter_pseudo_labels(ctx, pred)
    seconds = round(time.perf_counter() - started, 2)
    return {**state, "metrics": {name: {**ctx.evaluate(pred.labels), "seconds": seconds}}}


def supervised_stage(
    ctx: PipelineContext,
    lnet: dict[str, Any],
    progress: StageProgress,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """S_a, S_b and Dsc trained on the human masks alone; their tag-constrained labels of
    the targets join L-Net's in P-Net's pseudo labels (models.pseudo.fuse_labels)."""
    cfg = ctx.cfg
    return _train_stage(
        "supervised",
        ctx,
        _starting_nets(ctx, lnet),
        ctx.supervised_tensors(),
        epochs=cfg.epochs_supervised,
        seed=cfg.seed + 5,
        progress=progress,
        should_stop=should_stop,
        teaches=True,
    )


def _pnet_labels(
    ctx: PipelineContext, lnet: dict[str, Any], teacher: dict[str, Any] | None
) -> dict[str, torch.Tensor]:
    """P-Net's training tensors: L-Net's coarse masks alone, or its weak labels fused with
    a teacher's (the supervised nets', or a relay's fresh student's) where there is one."""
    cfg = ctx.cfg
    coarse = lnet["coarse"]
    if teacher is None:
        weight = (coarse != 255).float()
    else:
        coarse = _weak_labels(cfg, lnet["cam"], coarse)
        learned = (
            named_classes(coarse, teacher["labels"], ctx.taught_classes, ctx.weak)
            if cfg.weak_source == "teacher"
            else ctx.learned_classes
        )
        if "pseudo" in teacher:  # pnet_labels=filtered
            sup, sup_weight = teacher["pseudo"], teacher["weight"]
            fused = fuse_labels(coarse, sup, learned)
            from_sup = (fused == sup) & (sup != 255)
            taught = torch.isin(fused.long(), torch.tensor(learned))
            coarse = torch.where(~from_sup & taught, torch.full_like(fused, 255), fused)
            weight = torch.where(from_sup, sup_weight, (coarse != 255).float())
        else:
            coarse = fuse_labels(coarse, teacher["labels"], learned)
            weight = (coarse != 255).float()
    return ctx.segmenter_tensors(coarse, weight)


def pnet_stage(
    ctx: PipelineContext,
    lnet: dict[str, Any],
    supervised: dict[str, Any] | None,
    progress: StageProgress,
    should_stop: Callable[[], bool],
) -> dict[str, Any]:
    """S_a, S_b and Dsc on human masks + pseudo labels: L-Net's coarse masks, fused with
    the supervised stage's labels (whose nets P-Net then continues) when there is one.

    pnet_start=relay puts a fresh student first: it learns from the supervised nets'
    labels (it labels the tag-only photos better than they do but generalises worse:
    docs/quality-log.md, session 14), and its filtered labels, not the supervised nets',
    teach the continued student. Its metrics appear as ``pnet_fresh`` beside ``pnet``."""
    cfg = ctx.cfg
    relay = supervised is not None and cfg.pnet_start == "relay"
    fresh = supervised is None or cfg.pnet_start == "fresh"

    def train(
        name: str, nets: SegmenterNets, teacher: dict[str, Any] | None, **kw: Any
    ) -> dict[str, Any]:
        return _train_stage(
            name,
            ctx,
            nets,
            _pnet_labels(ctx, lnet, teacher),
            epochs=cfg.epochs_pnet,
            seed=cfg.seed + 4,
            should_stop=should_stop,
            **kw,
        )

    prior_net = _prior_net(ctx, lnet) if cfg.cam_prior_labels == "teachers" else None
    prior_metrics: dict[str, Any] = {}

    def with_prior(name: str, teacher: dict[str, Any] | None) -> dict[str, Any] | None:
        if teacher is None or prior_net is None:
            return teacher
        teacher, metrics = teacher_with_prior(ctx, name, teacher, prior_net)
        prior_metrics.update(metrics)
        return teacher

    teacher, first = with_prior("supervised", supervised), None
    if relay:
        first = train(
            "pnet_fresh",
            _starting_nets(ctx, lnet),
            teacher,
            progress=lambda f, m: progress(0.5 * f, m),
            teaches=True,
        )
        teacher = with_prior("pnet_fresh", first)
    nets = _starting_nets(ctx, lnet) if fresh else SegmenterNets.build(ctx, supervised)
    result = train(
        "pnet",
        nets,
        teacher,
        progress=(lambda f, m: progress(0.5 + 0.5 * f, m)) if relay else progress,
        continued=not fresh,
    )
    first_metrics = {} if first is None else first["metrics"]
    result["metrics"] = {**first_metrics, **prior_metrics, **result["metrics"]}
    return result


def round_stage(
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


def _fits_prior(ctx: PipelineContext) -> bool:
    """Whether the CAM prior's weight is fitted: cam_prior_fit=holdout and held-out masks."""
    return ctx.cfg.cam_prior_fit == "holdout" and bool(ctx.holdout)


def _prior_net(ctx: PipelineContext, lnet: dict[str, Any] | None) -> LNet | None:
    """L-Net (from its stage's state) for the CAM prior, or None where none applies."""
    cfg = ctx.cfg
    if lnet is None or not (cfg.cam_prior > 0 or _fits_prior(ctx)):
        return None
    return build_lnet(ctx.num_classes, cfg, ctx.device, lnet["lnet"])


def _prior_weight(
    ctx: PipelineContext, nets: SegmenterNets, prior_net: LNet | None
) -> tuple[float, dict[str, float]]:
    """The CAM prior's weight for ``nets``: cfg.cam_prior, or the one fitted on the held-out
    masks (cam_prior_fit=holdout), with every tried weight's held-out mIoU."""
    if prior_net is not None and _fits_prior(ctx):
        return fit_weight(ctx, [nets.s_a, nets.s_b], prior_net)
    return ctx.cfg.cam_prior, {}


def teacher_with_prior(
    ctx: PipelineContext, name: str, teacher: dict[str, Any], prior_net: LNet
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A teaching stage's labels of the targets (and its filtered labels) predicted again
    with the CAM prior at the weight that suits its nets (cam_prior_labels=teachers), and
    the metrics ``<name>_prior``: the weight, the fit and the new labels' held-out report."""
    started = time.perf_counter()
    nets = SegmenterNets.build(ctx, teacher)
    weight, scores = _prior_weight(ctx, nets, prior_net)
    report: dict[str, Any] = {"cam_prior": weight, "cam_prior_fit": scores}
    if weight > 0:
        pred = predict_targets(ctx, nets, prior_net, ctx.prior_weights(weight))
        teacher = {**teacher, "labels": pred.labels}
        if "pseudo" in teacher:  # pnet_labels=filtered
            teacher["pseudo"], teacher["weight"], _, _ = filter_pseudo_labels(ctx, pred)
        report.update(ctx.evaluate(pred.labels))
    report["seconds"] = round(time.perf_counter() - started, 2)
    return teacher, {f"{name}_prior": report}


def predict_stage(
    ctx: PipelineContext,
    nets_state: dict[str, Any],
    class_quality: dict[int, float],
    progress: StageProgress,
    lnet: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The delivered masks of the tag-only images and the annotation budget; ``lnet`` (its
    stage's state) gives the CAM prior where cfg.cam_prior > 0 or its weight is fitted
    on the held-out masks (cam_prior_fit=holdout)."""
    started = time.perf_counter()
    nets = SegmenterNets.build(ctx, nets_state)
    prior_net = _prior_net(ctx, lnet)
    weight, fit_scores = _prior_weight(ctx, nets, prior_net)
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
        zoom=ctx.cfg.inference_zoom,
        precision=ctx.cfg.precision,
        lnet=prior_net,
        cam_prior=ctx.prior_weights(weight),
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
        "cam_prior": weight,
        "metrics": {
            "predict": {
                "images": len(preds),
                "seconds": round(time.perf_counter() - started, 2),
                "cam_prior": weight,
                # held-out mIoU per tried weight (cam_prior_fit=holdout)
                "cam_prior_fit": fit_scores,
            }
        },
    }
