"""Partial human masks: which count, how they are filled, and that L-Net fills them well."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import LabelingData, PipelineConfig, run_pipeline
from models.context import PipelineContext
from models.errors import StopRequested
from models.inference import predict
from models.label_transfer import transfer_labels
from models.losses import candidate_set_loss, masked_cross_entropy
from models.metrics import evaluate
from models.networks import build_lnet
from models.partial_masks import complete_masks, partial_images, unpainted_tags
from models.self_training import SegmenterNets, train_segmenters
from models.transforms import prepare_masks
from tests.synthetic import make_shapes_dataset, split_strong_weak

STRONG = [1, 2]


def test_a_mask_is_partial_when_a_tag_is_unpainted_and_pixels_are_left() -> None:
    painted = np.array([[1, 1], [255, 0]], dtype=np.uint8)
    full = np.array([[1, 1], [2, 0]], dtype=np.uint8)
    no_gap = np.array([[1, 1], [0, 0]], dtype=np.uint8)
    masks = [painted, full, no_gap, None]
    tags = [frozenset({1, 2}), frozenset({1, 2}), frozenset({1, 2}), frozenset({2})]
    assert unpainted_tags(painted, tags[0]) == {2}
    partial = partial_images(masks, tags, [0, 1, 2, 3], has_background=True)
    # full paints every tag; no_gap leaves a tag out but no pixel for it; 3 has no mask
    assert partial.indices == [0]
    assert partial.tags == [frozenset({2})]
    assert partial.background == [False]  # the mask paints background: all of it
    assert len(partial_images(masks, tags, [1, 2], has_background=True)) == 0


def test_background_stays_a_candidate_only_where_no_pixel_paints_it() -> None:
    mask = np.array([[1, 255]], dtype=np.uint8)
    tags = [frozenset({1, 2})]
    assert partial_images([mask], tags, [0], has_background=True).background == [True]
    assert partial_images([mask], tags, [0], has_background=False).background == [False]


def test_completion_fills_only_unpainted_pixels_inside_the_image() -> None:
    masks = torch.tensor([[[1, 255, 255], [0, 255, 255]]], dtype=torch.uint8)
    labels = torch.tensor([[[3, 3, 255], [3, 3, 3]]], dtype=torch.uint8)
    valid = torch.tensor([[[True, True, True], [True, True, False]]])
    out = complete_masks(masks, labels, valid)
    # painted pixels keep their class, 255 labels and padding stay unpainted
    assert out.tolist() == [[[1, 3, 255], [0, 3, 255]]]


def _transfer_data() -> tuple[LabelingData, list[np.ndarray]]:
    images, gts, tags = make_shapes_dataset(80, 48, seed=1, max_objects=3)
    masks = split_strong_weak(gts, tags, STRONG, mask_fraction=0.6)
    return LabelingData(images, tags, masks, num_classes=4), gts


CFG = PipelineConfig(
    backbone="scratch",
    image_size=48,
    width=16,
    batch_size=8,
    epochs_lnet=15,
    slic_segments=24,
    device="cpu",
)


def lnet_state(data: LabelingData, cfg: PipelineConfig, holdout: list[int] | None = None) -> dict:
    """Run the pipeline up to its first stage and return that stage's saved state."""
    saved: dict[str, dict] = {}
    with pytest.raises(StopRequested):
        run_pipeline(
            data,
            cfg,
            holdout=holdout,
            save_stage=lambda name, state: saved.__setitem__(name, state),
            should_stop=lambda: "lnet" in saved,
        )
    return saved["lnet"]


def test_lnet_completes_unpainted_pixels_better_than_cams_over_all_tags() -> None:
    """On the unpainted pixels of partial masks, labels over the left-out tags are right
    far more often than CAM's argmax over all of the image's tags (what a tag-only image
    gets), and never a painted category."""
    data, gts = _transfer_data()
    ctx = PipelineContext.build(data, CFG, torch.device("cpu"))
    assert len(ctx.partial) >= 10
    # Some masks leave two objects unpainted, so not every pixel has a single candidate.
    assert sum(len(t) > 1 for t in ctx.partial.tags) >= 3
    rows = ctx.partial.indices
    state = lnet_state(data, CFG)
    completion = state["completion"]
    truth = prepare_masks([gts[i] for i in rows], CFG.image_size)
    painted = ctx.masks[rows]
    unpainted = (painted == 255) & ctx.valid[rows] & (truth != 255)
    completed = complete_masks(painted, completion, ctx.valid[rows])
    accuracy = float((completed[unpainted] == truth[unpainted]).float().mean())

    # The same L-Net's CAM argmax over every tag of the image, on the same pixels.
    lnet = build_lnet(4, CFG, torch.device("cpu"), state["lnet"])
    cam_all, _ = transfer_labels(
        lnet,
        ctx.images[rows],
        [data.tags[i] for i in rows],
        CFG,
        has_background=True,
        device=torch.device("cpu"),
        valid=ctx.valid[rows],
    )
    cam_accuracy = float((cam_all[unpainted] == truth[unpainted]).float().mean())
    print(
        f"\nunpainted pixels right: completion {accuracy:.3f}, CAM over all tags {cam_accuracy:.3f}"
    )
    assert accuracy >= 0.8
    assert accuracy >= cam_accuracy + 0.1
    for row, tags in zip(completion, ctx.partial.tags, strict=True):
        assert set(row.unique().tolist()) <= set(tags) | {0, 255}


def test_as_is_leaves_partial_masks_unpainted() -> None:
    data, _ = _transfer_data()
    ctx = PipelineContext.build(
        data, PipelineConfig(**{**CFG.to_dict(), "partial_masks": "as_is"}), torch.device("cpu")
    )
    assert len(ctx.partial) == 0
    assert ctx.segmenter_masks is ctx.masks


def test_candidate_set_loss_is_cross_entropy_for_one_candidate_and_zero_for_all() -> None:
    logits = torch.randn(2, 4, 3, 3)
    pixels = torch.zeros(2, 3, 3, dtype=torch.bool)
    pixels[0, :2] = True
    one = torch.tensor([[False, False, True, False], [True, True, True, True]])
    target = torch.full((2, 3, 3), 255)
    target[0][pixels[0]] = 2
    ce = masked_cross_entropy(logits, target)
    assert torch.allclose(candidate_set_loss(logits, one, pixels), ce, atol=1e-6)
    every = torch.ones(2, 4, dtype=torch.bool)
    assert float(candidate_set_loss(logits, every, pixels)) == pytest.approx(0.0, abs=1e-6)
    two = torch.tensor([[False, True, True, False], [False] * 4])
    assert float(candidate_set_loss(logits, two, pixels)) < float(ce)  # P(1 or 2) > P(2)
    nothing = torch.zeros(2, 3, 3, dtype=torch.bool)
    logits.requires_grad_(True)
    empty = candidate_set_loss(logits, one, nothing)
    empty.backward()
    assert float(empty.detach()) == 0.0 and not torch.isnan(logits.grad).any()


def test_candidates_name_the_left_out_tags_of_partial_rows_only() -> None:
    data, _ = _transfer_data()
    cfg = PipelineConfig(**{**CFG.to_dict(), "partial_masks": "candidates"})
    ctx = PipelineContext.build(data, cfg, torch.device("cpu"))
    rows = ctx.supervised_tensors()
    assert len(ctx.partial) >= 10
    # supervised rows are the train_masked images in order, repeated
    masked = ctx.train_masked * (len(rows["candidates"]) // len(ctx.train_masked))
    left_out = dict(zip(ctx.partial.indices, ctx.partial.tags, strict=True))
    for row, i in enumerate(masked):
        named = set(torch.nonzero(rows["candidates"][row]).flatten().tolist())
        assert named == (set(left_out[i]) if i in left_out else set())  # masks paint background
    completing = PipelineContext.build(data, CFG, torch.device("cpu"))
    assert not completing.supervised_tensors()["candidates"].any()


def test_taught_classes_add_the_weak_categories_partial_masks_leave_out() -> None:
    """What weak_source=teacher lets the supervised nets label: strong categories,
    background, and the weak ones a partial mask leaves unpainted (none with as_is)."""
    data, _ = _transfer_data()
    ctx = PipelineContext.build(data, CFG, torch.device("cpu"))
    left_out = set().union(*ctx.partial.tags)
    assert left_out and left_out <= set(ctx.weak)
    assert ctx.taught_classes == sorted({0, *STRONG} | left_out)
    as_is = PipelineConfig(**{**CFG.to_dict(), "partial_masks": "as_is"})
    assert PipelineContext.build(data, as_is, torch.device("cpu")).taught_classes == [0, *STRONG]


def _weak_iou_of_supervised_nets(partial_masks: str) -> float:
    """Weak-category mIoU, on images never trained on, of S_a + S_b trained on the human
    masks alone (half the categories painted) with ``partial_masks``."""
    data, _ = _transfer_data()
    cfg = PipelineConfig(**{**CFG.to_dict(), "partial_masks": partial_masks})
    ctx = PipelineContext.build(data, cfg, torch.device("cpu"), holdout=[])
    return weak_miou_on_unseen_images(supervised_state(ctx), cfg)


def supervised_state(ctx: PipelineContext) -> dict:
    """A predict()-able state of S_a + S_b trained 8 epochs on ``ctx``'s human masks."""
    nets = SegmenterNets.build(ctx, seed=0)
    train_segmenters(
        ctx,
        nets,
        ctx.supervised_tensors(),
        epochs=8,
        seed=3,
        cross_thresholds=None,
        on_progress=None,
        should_stop=None,
    )
    return {
        **nets.state(),
        "num_classes": ctx.num_classes,
        "has_background": True,
        "config": ctx.cfg.to_dict(),
    }


def weak_miou_on_unseen_images(state: dict, cfg: PipelineConfig) -> float:
    """Weak-category mIoU of a model state's predictions on 40 fresh synthetic images."""
    images, gts, tags = make_shapes_dataset(40, 48, seed=21, max_objects=3)
    preds = [p.mask for p in predict(state, images, tags, cfg)]
    weak = [c for c in range(1, 5) if c not in STRONG]
    return float(evaluate(preds, gts, 5, STRONG, weak)["miou_weak"])


def test_candidate_sets_teach_the_categories_partial_masks_leave_out() -> None:
    """Trained on partial masks alone, the segmenters learn the unpainted categories from
    'one of these left-out tags' where ignoring those pixels teaches them nothing."""
    ignored, candidates = (
        _weak_iou_of_supervised_nets("as_is"),
        _weak_iou_of_supervised_nets("candidates"),
    )
    print(f"\nweak-category mIoU, unseen images: as_is {ignored:.3f}, candidates {candidates:.3f}")
    assert candidates >= ignored + 0.15
