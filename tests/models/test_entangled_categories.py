"""partial_masks=mixed: the candidates loss, except on categories no partial mask leaves
out alone, whose pixels L-Net labels (models/partial_masks.py, PartialMasks.entangled)."""

from __future__ import annotations

import numpy as np
import torch

from models import LabelingData, PipelineConfig
from models.context import PipelineContext
from models.inference import predict
from models.metrics import evaluate
from models.partial_masks import PartialMasks, keep_classes
from tests.models.test_partial_masks import CFG, lnet_state, supervised_state
from tests.synthetic import make_shapes_dataset, split_strong_weak

STRONG = [1, 2]
SHY = 4  # weak, and left unpainted only beside category 3


def test_entangled_categories_are_never_left_out_alone() -> None:
    partial = PartialMasks(
        indices=[0, 1, 2, 3],
        tags=[frozenset({3}), frozenset({3, 4}), frozenset({5, 6}), frozenset({6})],
        background=[False, False, False, True],  # 6 alone, but background is open too
    )
    assert partial.entangled() == [4, 5, 6]
    assert PartialMasks([], [], []).entangled() == []


def test_keep_classes_leaves_the_others_unpainted() -> None:
    labels = torch.tensor([[0, 3, 4, 255]], dtype=torch.uint8)
    assert keep_classes(labels, [4]).tolist() == [[255, 255, 4, 255]]


def _shy_data() -> tuple[LabelingData, list[np.ndarray]]:
    """Synthetic transfer data where every partial mask holding SHY also leaves 3 out."""
    images, gts, tags = make_shapes_dataset(120, 48, seed=5, max_objects=3)
    masks = split_strong_weak(gts, tags, STRONG, mask_fraction=0.7)
    masks = [None if SHY in t and 3 not in t else m for m, t in zip(masks, tags, strict=True)]
    return LabelingData(images, tags, masks, num_classes=4), gts


def _cfg(partial_masks: str) -> PipelineConfig:
    return PipelineConfig(**{**CFG.to_dict(), "partial_masks": partial_masks})


def test_mixed_completes_only_the_entangled_categories() -> None:
    data, _ = _shy_data()
    ctx = PipelineContext.build(data, _cfg("mixed"), torch.device("cpu"))
    assert ctx.partial.entangled() == [SHY]
    completion = lnet_state(data, _cfg("mixed"))["completion"]
    assert set(completion.unique().tolist()) == {SHY, 255}
    # the other unpainted pixels keep their candidate sets
    assert ctx.supervised_tensors()["candidates"].any()


def _shy_iou_of_supervised_nets(partial_masks: str) -> float:
    """IoU of SHY, on fresh images, of S_a + S_b trained on the human masks alone."""
    data, _ = _shy_data()
    cfg = _cfg(partial_masks)
    ctx = PipelineContext.build(data, cfg, torch.device("cpu"), holdout=[])
    if partial_masks == "mixed":
        ctx.use_completed(lnet_state(data, cfg, holdout=[])["completion"])
    state = supervised_state(ctx)
    images, gts, tags = make_shapes_dataset(40, 48, seed=21, max_objects=3)
    preds = [p.mask for p in predict(state, images, tags, cfg)]
    return float(evaluate(preds, gts, 5, STRONG, [3, 4])["iou"][str(SHY)])


def test_mixed_teaches_a_category_the_candidates_let_the_nets_call_a_neighbour() -> None:
    candidates, mixed = (
        _shy_iou_of_supervised_nets("candidates"),
        _shy_iou_of_supervised_nets("mixed"),
    )
    print(
        f"\nIoU of the category left out only beside another: candidates {candidates:.3f}, "
        f"mixed {mixed:.3f}"
    )
    assert mixed >= candidates + 0.1
