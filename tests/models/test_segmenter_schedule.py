"""How long and how fast segmenter stages train: continue_lr (stages that continue trained
segmenters, P-Net after the supervised stage and the rounds, step at a share of the
configured rates; fresh stages are untouched) and min_steps (a stage with few images gets
more epochs)."""

from __future__ import annotations

import pytest
import torch

from models import LabelingData, PipelineConfig
from models.context import PipelineContext
from models.self_training import SegmenterNets, train_segmenters
from models.train import FitResult
from tests.synthetic import make_shapes_dataset, split_strong_weak

CFG = PipelineConfig(
    backbone="scratch", image_size=32, width=8, batch_size=8, slic_segments=16, device="cpu"
)


def _context(**knobs: float) -> PipelineContext:
    """24 fully masked synthetic images (three batches of 8) under CFG with ``knobs``."""
    images, gts, tags = make_shapes_dataset(24, 32, seed=4)
    masks = split_strong_weak(gts, tags, [1, 2, 3, 4], mask_fraction=1.0)
    cfg = PipelineConfig(**{**CFG.to_dict(), **knobs})
    return PipelineContext.build(
        LabelingData(images, tags, masks, 4), cfg, torch.device("cpu"), holdout=[]
    )


def _one_epoch(ctx: PipelineContext, nets: SegmenterNets, continued: bool = False) -> FitResult:
    """One seeded epoch of ``nets`` on the context's human masks."""
    return train_segmenters(
        ctx,
        nets,
        ctx.supervised_tensors(),
        epochs=1,
        seed=1,
        cross_thresholds=None,
        on_progress=None,
        should_stop=None,
        continued=continued,
    )


def _distance_moved(continue_lr: float, continued: bool) -> float:
    """L2 distance S_a's weights travel in one epoch from the same seeded start."""
    ctx = _context(continue_lr=continue_lr)
    nets = SegmenterNets.build(ctx, seed=0)
    before = {k: v.detach().clone() for k, v in nets.s_a.named_parameters()}
    _one_epoch(ctx, nets, continued)
    after = dict(nets.s_a.named_parameters())
    return float(sum((after[k].detach() - v).pow(2).sum() for k, v in before.items()) ** 0.5)


def test_continued_stages_step_at_the_share_and_fresh_ones_at_the_full_rate() -> None:
    full = _distance_moved(1.0, continued=True)
    tenth = _distance_moved(0.1, continued=True)
    fresh = _distance_moved(0.1, continued=False)
    assert tenth < 0.3 * full  # AdamW steps scale with the rate
    assert fresh == full  # same seeds, same rates: continue_lr does not reach fresh stages


@pytest.mark.parametrize(("min_steps", "batches"), [(0, 3), (3, 3), (10, 12)])
def test_min_steps_adds_whole_epochs_to_stages_with_few_batches(
    min_steps: int, batches: int
) -> None:
    ctx = _context(min_steps=min_steps)
    assert _one_epoch(ctx, SegmenterNets.build(ctx, seed=0)).iterations == batches
