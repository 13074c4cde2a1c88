"""single_tag: a tag-only image with one tag, in data without a background class, is a
mask of that tag (every pixel is that category), and the supervised stage trains on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from models import LabelingData, PipelineConfig
from models.context import PipelineContext
from models.inference import predict
from models.metrics import evaluate
from models.stages import supervised_stage
from tests.synthetic import make_closeups, make_shapes_dataset, split_strong_weak

GROUND, STRONG, WEAK = 1, [1, 2, 3], [4, 5]
CFG = PipelineConfig(
    backbone="scratch",
    image_size=48,
    width=16,
    batch_size=8,
    epochs_supervised=8,
    segmenter_init="scratch",
    partial_masks="as_is",
    slic_segments=24,
    device="cpu",
)


def _scenes(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[frozenset[int]]]:
    return make_shapes_dataset(n, 48, seed=seed, num_classes=5, background=False, max_objects=3)


def _data() -> LabelingData:
    """Scenes on a ground (category 1) with the strong categories painted on 60 % of the
    images that hold one (the weak ones left unpainted), plus tag-only close-ups of each
    weak category: the only place a weak category's pixels are known."""
    images, gts, tags = _scenes(60, seed=3)
    masks = split_strong_weak(gts, tags, STRONG, mask_fraction=0.6)
    close, _, close_tags = make_closeups(16, WEAK, seed=4)
    return LabelingData(images + close, tags + close_tags, masks + [None] * 16, num_classes=5)


def _ctx(data: LabelingData, **knobs: object) -> PipelineContext:
    return PipelineContext.build(
        data, dataclasses.replace(CFG, **knobs), torch.device("cpu"), holdout=[]
    )


def test_single_tag_images_join_the_supervised_stage_as_masks_of_their_tag() -> None:
    data = _data()
    ctx = _ctx(data, single_tag="mask")
    closeups = list(range(60, 76))
    single_scenes = [i for i in range(60) if data.masks[i] is None and len(data.tags[i]) == 1]
    assert ctx.single_tag == single_scenes + closeups
    rows = ctx.supervised_tensors()
    for i in closeups[:3]:
        (tag,) = data.tags[i]
        row = next(
            r for r in range(len(rows["image"])) if torch.equal(rows["image"][r], ctx.images[i])
        )
        assert bool(rows["has_mask"][row])
        assert set(rows["mask"][row][ctx.valid[i]].unique().tolist()) == {tag}
        assert (rows["mask"][row][~ctx.valid[i]] == 255).all()
    assert set(WEAK) <= set(ctx.taught_classes)
    assert (ctx.masks[closeups] == 255).all()  # the human masks are left as they were


def test_single_tag_stays_off_with_a_background_class_or_when_told() -> None:
    data = _data()
    assert _ctx(data, single_tag="tags").single_tag == []
    assert _ctx(data, single_tag="mask", background="present").single_tag == []
    rejected = dataclasses.replace(data, no_pseudo=frozenset({60}))
    assert 60 not in _ctx(rejected, single_tag="mask").single_tag
    assert PipelineConfig().single_tag == "tags"
    with pytest.raises(ValueError, match="single_tag"):
        PipelineConfig.from_params({"single_tag": "yes"})


def _scores_of_supervised_nets(single_tag: str) -> tuple[float, float]:
    """The supervised stage's share of right pixels on fresh close-ups of the weak
    categories with every category allowed, and its weak-category mIoU on fresh scenes
    (tags given)."""
    ctx = _ctx(_data(), single_tag=single_tag)
    state = supervised_stage(ctx, {}, lambda f, m: None, lambda: False)
    model = {
        **{n: state[n] for n in ("s_a", "s_b", "disc")},
        "num_classes": 5,
        "has_background": False,
        "config": ctx.cfg.to_dict(),
    }
    images, gts, _ = make_closeups(10, WEAK, seed=20)
    anything = [frozenset(range(1, 6))] * len(images)
    preds = [p.mask for p in predict(model, images, anything, ctx.cfg)]
    closeups = float(np.mean([(p == g).mean() for p, g in zip(preds, gts, strict=True)]))
    images, gts, tags = _scenes(40, seed=11)
    preds = [p.mask for p in predict(model, images, tags, ctx.cfg)]
    return closeups, float(evaluate(preds, gts, 6, STRONG, WEAK)["miou_weak"])


def test_close_ups_teach_the_supervised_nets_the_categories_no_mask_paints() -> None:
    """With the close-ups as masks, the supervised nets name the weak categories on
    close-ups they never saw and find some of them in fresh scenes; without, nothing told
    them those categories exist (close-ups 0.73 against 0.00 here, scenes 0.13 against
    0.00: a full-frame texture carries over to a small object on the ground only in part,
    0.08-0.34 over three seeds at 16 epochs)."""
    closeups, scenes = _scores_of_supervised_nets("mask")
    closeups_tags, scenes_tags = _scores_of_supervised_nets("tags")
    print(
        f"\nright pixels on unseen close-ups: mask {closeups:.3f}, tags {closeups_tags:.3f}; "
        f"weak mIoU on unseen scenes: mask {scenes:.3f}, tags {scenes_tags:.3f}"
    )
    assert closeups >= 0.5
    assert closeups_tags <= 0.3
    assert scenes >= scenes_tags + 0.05
