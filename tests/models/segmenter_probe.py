"""A held-out probe of segmenter training knobs: S_a/S_b trained on synthetic shapes with a
perfect teacher's pseudo labels, scored on masked images they never trained on."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from models import LabelingData, PipelineConfig
from models.context import PipelineContext
from models.self_training import SegmenterNets, predict_targets, train_segmenters
from models.transforms import prepare_masks
from tests.synthetic import make_shapes_dataset

PROBE_CFG = PipelineConfig(
    backbone="scratch", image_size=32, width=8, batch_size=8, slic_segments=16, device="cpu"
)


def probe_context(**knobs: Any) -> tuple[PipelineContext, Tensor, Tensor]:
    """80 synthetic shapes: 10 training masks, 20 held-out ones, 50 tag-only images with
    their ground truth as pseudo labels (a perfect teacher); ``knobs`` set on the config.
    Returns the context, the targets' pseudo labels and their weights."""
    images, gts, tags = make_shapes_dataset(80, 32, seed=6)
    masks: list[np.ndarray | None] = [g if i < 30 else None for i, g in enumerate(gts)]
    cfg = PipelineConfig(**{**PROBE_CFG.to_dict(), **knobs})
    ctx = PipelineContext.build(
        LabelingData(images, tags, masks, 4), cfg, torch.device("cpu"), holdout=list(range(20))
    )
    pseudo = prepare_masks([gts[i] for i in ctx.targets], cfg.image_size)
    return ctx, pseudo, (pseudo != 255).float()


def train_probe(
    ctx: PipelineContext,
    nets: SegmenterNets,
    pseudo: Tensor,
    weight: Tensor,
    *,
    epochs: int = 8,
    continued: bool = False,
) -> None:
    """Train ``nets`` on the probe's masks and pseudo labels (seeded)."""
    train_segmenters(
        ctx,
        nets,
        ctx.segmenter_tensors(pseudo, weight),
        epochs=epochs,
        seed=2,
        cross_thresholds=None,
        on_progress=None,
        should_stop=None,
        continued=continued,
    )


def held_out_miou(ctx: PipelineContext, nets: SegmenterNets) -> float:
    """mIoU of the nets' labels on the 20 held-out masked images."""
    miou = ctx.evaluate(predict_targets(ctx, nets).labels)["miou"]
    assert isinstance(miou, float)
    return miou


def segmenter_miou_on_unseen(**knobs: Any) -> float:
    """Fresh S_a/S_b trained on the probe (see :func:`probe_context`) with ``knobs`` set;
    held-out mIoU on the 20 masked images they never trained on."""
    ctx, pseudo, weight = probe_context(**knobs)
    nets = SegmenterNets.build(ctx, seed=0)
    train_probe(ctx, nets, pseudo, weight)
    return held_out_miou(ctx, nets)
