"""A held-out probe of segmenter training knobs: S_a/S_b trained on synthetic shapes with a
perfect teacher's pseudo labels, scored on masked images they never trained on."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models import LabelingData, PipelineConfig
from models.context import PipelineContext
from models.self_training import SegmenterNets, predict_targets, train_segmenters
from models.transforms import prepare_masks
from tests.synthetic import make_shapes_dataset

PROBE_CFG = PipelineConfig(
    backbone="scratch", image_size=32, width=8, batch_size=8, slic_segments=16, device="cpu"
)


def segmenter_miou_on_unseen(**knobs: Any) -> float:
    """S_a/S_b trained on 10 human masks + 50 tag-only images labelled by a perfect
    teacher (their ground truth as pseudo labels), with ``knobs`` set on the config;
    held-out mIoU on 20 masked images they never trained on."""
    images, gts, tags = make_shapes_dataset(80, 32, seed=6)
    masks: list[np.ndarray | None] = [g if i < 30 else None for i, g in enumerate(gts)]
    cfg = PipelineConfig(**{**PROBE_CFG.to_dict(), **knobs})
    ctx = PipelineContext.build(
        LabelingData(images, tags, masks, 4), cfg, torch.device("cpu"), holdout=list(range(20))
    )
    pseudo = prepare_masks([gts[i] for i in ctx.targets], cfg.image_size)
    weight = (pseudo != 255).float()
    nets = SegmenterNets.build(ctx, seed=0)
    train_segmenters(
        ctx,
        nets,
        ctx.segmenter_tensors(pseudo, weight),
        epochs=8,
        seed=2,
        cross_thresholds=None,
        on_progress=None,
        should_stop=None,
    )
    miou = ctx.evaluate(predict_targets(ctx, nets).labels)["miou"]
    assert isinstance(miou, float)
    return miou
