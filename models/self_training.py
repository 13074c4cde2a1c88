"""Segmenter training and self-training rounds (Ke et al. 2020; RRN, Wang et al. 2023).

A round: predict the targets (S_a+S_b, flip-averaged, tag-constrained) → per-class
thresholds τ_k → region relevance filter and weights → retrain S_a, S_b (warm start, with
cross-supervision and the tag loss) and Dsc → score on held-out masks → roll back when
held-out mIoU (over classes in the held-out masks) fell against the previous stage.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from models.averaging import blend_states
from models.backbone import fitted_state
from models.context import PipelineContext
from models.discriminator import Discriminator
from models.inference import iter_ensemble
from models.lnet import LNet
from models.loader import Batches, Perturbation, PerturbedBatches
from models.losses import IGNORE
from models.mixing import cutmix_pseudo
from models.networks import build_discriminator, build_segmenter, cpu_state
from models.photometric import jitter_pseudo
from models.pnet import PNet
from models.pseudo import allowed_classes, apply_thresholds, class_thresholds
from models.regions import filter_regions, region_scores
from models.steps import PNetAdversarialStep
from models.train import FitResult, ProgressFn, SizedBatches, StopFn, fit


@dataclass
class SegmenterNets:
    """S_a, S_b and the discriminator, trained together."""

    s_a: PNet
    s_b: PNet
    disc: Discriminator

    @classmethod
    def build(
        cls,
        ctx: PipelineContext,
        state: dict[str, Any] | None = None,
        seed: int = 0,
        encoder: dict[str, Tensor] | None = None,
    ) -> SegmenterNets:
        """Nets loaded from ``state``, or fresh ones (S_a, S_b, Dsc seeded seed+1, +2, +3).

        Fresh segmenters start from ``encoder`` weights when given (e.g. L-Net's encoder,
        as CPS-style branches share a pretrained backbone and differ in their heads).
        """
        nets = []
        builders = [
            ("s_a", build_segmenter),
            ("s_b", build_segmenter),
            ("disc", build_discriminator),
        ]
        for offset, (name, build) in enumerate(builders):
            torch.manual_seed(seed + 1 + offset)
            net = build(
                ctx.num_classes, ctx.cfg, ctx.device, None if state is None else state[name]
            )
            if state is None and encoder is not None and hasattr(net, "encoder"):
                net.encoder.load_state_dict(fitted_state(net.encoder, encoder))
            nets.append(net)
        return cls(*nets)  # type: ignore[arg-type]

    def state(self) -> dict[str, dict[str, Tensor]]:
        return {
            "s_a": cpu_state(self.s_a),
            "s_b": cpu_state(self.s_b),
            "disc": cpu_state(self.disc),
        }

    def load(self, state: dict[str, dict[str, Tensor]]) -> None:
        for name in ("s_a", "s_b", "disc"):
            getattr(self, name).load_state_dict(state[name])


@dataclass
class TargetPrediction:
    """Ensemble output on the targets at training size, on CPU."""

    labels: Tensor  # (n, S, S) uint8, 255 on padding
    confidence: Tensor  # (n, S, S) float32
    agree: Tensor  # (n, S, S) bool
    real: Tensor  # (n, S, S) float32 Dsc "real" probability


def predict_targets(
    ctx: PipelineContext,
    nets: SegmenterNets,
    lnet: LNet | None = None,
    cam_prior: float | Tensor = 0.0,
) -> TargetPrediction:
    """Ensemble prediction of every target image (with L-Net's CAM prior at weight
    ``cam_prior`` where ``lnet`` is given: models/cam_prior.py)."""
    images = ctx.images[ctx.targets]
    allowed = allowed_classes(ctx.tags[ctx.targets], ctx.has_background)
    parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
    for batch in iter_ensemble(
        [nets.s_a, nets.s_b],
        nets.disc,
        images,
        allowed,
        batch_size=ctx.cfg.batch_size,
        device=ctx.device,
        shapes=[ctx.shapes[i] for i in ctx.targets],
        zoom=ctx.cfg.inference_zoom,
        precision=ctx.cfg.precision,
        lnet=lnet,
        cam_prior=cam_prior,
    ):
        confidence, labels = batch.probs.max(1)
        assert batch.real is not None
        parts.append((labels.to(torch.uint8), confidence, batch.agree, batch.real))
    size = ctx.cfg.image_size
    if not parts:
        empty = torch.zeros(0, size, size)
        return TargetPrediction(empty.to(torch.uint8), empty, empty.bool(), empty)
    labels, confidence, agree, real = (torch.cat(p) for p in zip(*parts, strict=True))
    labels[~ctx.valid[ctx.targets]] = IGNORE
    return TargetPrediction(labels, confidence, agree, real)


def filter_pseudo_labels(
    ctx: PipelineContext, pred: TargetPrediction
) -> tuple[Tensor, Tensor, Tensor, float]:
    """Per-class thresholds, then region relevance: (pseudo, weight, τ, kept fraction)."""
    cfg = ctx.cfg
    valid = ctx.valid[ctx.targets]
    taus = class_thresholds(
        pred.confidence[valid],
        pred.labels[valid],
        ctx.num_classes + 1,
        quantile=cfg.tau_quantile,
        tau_min=cfg.tau_min,
        tau_max=cfg.tau_max,
    )
    thresholded = apply_thresholds(pred.labels, pred.confidence, taus).numpy()
    pseudo = np.empty_like(thresholded)
    weight = np.zeros(thresholded.shape, dtype=np.float32)
    for p in range(len(thresholded)):
        scores = region_scores(ctx.segments[p], pred.real[p].numpy(), pred.agree[p].numpy())
        pseudo[p], weight[p] = filter_regions(thresholded[p], ctx.segments[p], scores, cfg.theta_r)
    kept = float((pseudo[valid.numpy()] != IGNORE).mean()) if valid.any() else 0.0
    return torch.from_numpy(pseudo), torch.from_numpy(weight), taus, kept


def train_segmenters(
    ctx: PipelineContext,
    nets: SegmenterNets,
    tensors: dict[str, Tensor],
    *,
    epochs: int,
    seed: int,
    cross_thresholds: Tensor | None,
    on_progress: ProgressFn | None,
    should_stop: StopFn | None,
    continued: bool = False,
) -> FitResult:
    """fit() S_a, S_b and Dsc on ``tensors`` (PipelineContext.segmenter_tensors or
    supervised_tensors): human masks + weighted pseudo-masks. ``continued`` nets (already
    trained by an earlier stage) train at ``continue_lr`` of the configured rates, so that
    noisy pseudo labels fine-tune them instead of re-warming them from the top, and end
    blended with their starting weights at ``student_blend`` (models.averaging)."""
    cfg = ctx.cfg
    if continued and cfg.continue_lr != 1.0:
        scale = cfg.continue_lr
        cfg = dataclasses.replace(
            cfg, lr=max(cfg.lr * scale, 1e-6), lr_disc=max(cfg.lr_disc * scale, 1e-7)
        )
    step = PNetAdversarialStep(
        {"s_a": nets.s_a, "s_b": nets.s_b},
        nets.disc,
        cfg,
        ctx.device,
        has_background=ctx.has_background,
        cross_thresholds=cross_thresholds,
    )
    loader: SizedBatches = Batches(
        tensors, ctx.cfg.batch_size, seed=seed, zoom_min=ctx.cfg.zoom_min
    )
    perturbations: list[Perturbation] = []
    if ctx.cfg.cutmix > 0:
        perturbations.append(functools.partial(cutmix_pseudo, prob=ctx.cfg.cutmix))
    if ctx.cfg.photometric > 0:
        perturbations.append(functools.partial(jitter_pseudo, prob=ctx.cfg.photometric))
    if perturbations:
        loader = PerturbedBatches(loader, perturbations, seed=seed + 1)
    epochs = max(epochs, math.ceil(ctx.cfg.min_steps / max(len(loader), 1)))
    start = nets.state() if continued and ctx.cfg.student_blend < 1.0 else None
    result = fit(
        step,
        loader,
        epochs=epochs,
        device=ctx.device,
        on_progress=on_progress,
        should_stop=should_stop,
        seed=seed,
        lr_schedule=ctx.cfg.schedule,
    )
    if start is not None:
        nets.load(blend_states(start, nets.state(), ctx.cfg.student_blend))
    return result


def run_round(
    ctx: PipelineContext,
    nets: SegmenterNets,
    *,
    round_index: int,
    previous_miou: float | None,
    on_progress: Callable[[float, dict], None],
    should_stop: StopFn,
) -> tuple[Tensor, dict[str, Any]]:
    """One self-training round on ``nets`` (modified in place; restored on rollback).

    Returns the round's target label maps and its metrics (held-out report, thresholds,
    kept fraction, seconds, rolled_back).
    """
    started = time.perf_counter()
    before = nets.state()
    pred = predict_targets(ctx, nets)
    pseudo, weight, taus, kept = filter_pseudo_labels(ctx, pred)
    on_progress(0.05, {"kept_fraction": kept})
    train_segmenters(
        ctx,
        nets,
        ctx.segmenter_tensors(pseudo, weight),
        epochs=ctx.cfg.epochs_round,
        seed=ctx.cfg.seed + 10 * round_index,
        cross_thresholds=taus,
        on_progress=lambda f, m: on_progress(0.05 + 0.85 * f, m),
        should_stop=should_stop,
        continued=True,
    )
    labels = predict_targets(ctx, nets).labels
    report = ctx.evaluate(labels)
    miou = report["miou_gt"]
    rolled_back = (
        previous_miou is not None
        and miou is not None
        and miou < previous_miou - ctx.cfg.rollback_tolerance
    )  # type: ignore[operator]
    if rolled_back:
        nets.load(before)
    metrics = {
        **report,
        "thresholds": [round(float(t), 4) for t in taus],
        "kept_fraction": round(kept, 4),
        "rolled_back": rolled_back,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return labels, metrics
