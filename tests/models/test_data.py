"""LabelingData validation and statistics, held-out split, resizing to and from training size."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.data import LabelingData, holdout_split
from models.loader import Batches
from models.transforms import labels_to_original, prepare_images, prepare_masks, resized_shape
from tests.synthetic import make_shapes_dataset, split_strong_weak


def _image(h: int = 8, w: int = 8) -> np.ndarray:
    return np.zeros((h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"images": [_image()], "tags": [frozenset({5})], "masks": [None]}, "tags"),
        (
            {"images": [_image()], "tags": [frozenset()], "masks": [np.zeros((4, 4), np.uint8)]},
            "mask",
        ),
        (
            {"images": [_image()], "tags": [frozenset()], "masks": [np.full((8, 8), 7, np.uint8)]},
            "class 7",
        ),
        ({"images": [np.zeros((8, 8), np.uint8)], "tags": [frozenset()], "masks": [None]}, "HxWx3"),
        ({"images": [_image()], "tags": [], "masks": [None]}, "same length"),
    ],
)
def test_invalid_input_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LabelingData(num_classes=3, **kwargs)


def test_background_strong_and_weak_learned_from_masks() -> None:
    images, masks, tags = make_shapes_dataset(30, 32, seed=3)
    data = LabelingData(images, tags, split_strong_weak(masks, tags, [1, 2], seed=0), 4)
    assert data.has_background
    assert data.strong_classes(3) == [1, 2] and data.weak_classes(3) == [3, 4]
    images, masks, tags = make_shapes_dataset(10, 32, seed=3, background=False)
    no_bg = LabelingData(images, tags, list(masks), 4)
    assert not no_bg.has_background
    assert LabelingData(images, tags, [None] * 10, 4).has_background  # nothing to learn from


def test_holdout_is_seeded_and_keeps_a_training_mask_per_class() -> None:
    images, masks, tags = make_shapes_dataset(40, 32, seed=4)
    data = LabelingData(images, tags, split_strong_weak(masks, tags, [1, 2, 3], seed=1), 4)
    held = holdout_split(data, 0.5, seed=7)
    assert held == holdout_split(data, 0.5, seed=7) != holdout_split(data, 0.5, seed=8)
    assert set(held) <= set(data.masked)
    training = [i for i in data.masked if i not in held]
    counts, remaining = data.mask_counts(), data.mask_counts(training)
    assert all(remaining[k] >= 1 for k in range(5) if counts[k] >= 1)
    assert holdout_split(data, 0.0, seed=7) == []


def test_resize_pad_and_back() -> None:
    assert resized_shape(30, 60, 48) == (24, 48)
    image = np.random.default_rng(0).integers(0, 255, (30, 60, 3), dtype=np.uint8)
    mask = np.zeros((30, 60), np.uint8)
    mask[:, 30:] = 2
    tensors, shapes = prepare_images([image], 48)
    assert tensors.shape == (1, 3, 48, 48) and shapes == [(24, 48)]
    assert tensors[0, :, 24:].abs().max() == 0  # padding = mean colour
    small = prepare_masks([mask, None], 48)
    assert small.dtype == torch.uint8 and (small[0, 24:] == 255).all() and (small[1] == 255).all()
    assert set(small[0, :24].unique().tolist()) == {0, 2}
    back = labels_to_original(small[0], shapes[0], (30, 60))
    assert back.shape == (30, 60) and (back == mask).mean() > 0.95


def test_batches_are_seeded_and_flip_spatial_tensors_together() -> None:
    x = torch.arange(4 * 6, dtype=torch.float32).view(4, 1, 1, 6)
    tensors = {"image": x, "mask": x[:, 0].clone(), "id": torch.arange(4)}
    first = list(Batches(tensors, 2, seed=1))
    again = list(Batches(tensors, 2, seed=1))
    assert len(first) == 2 and len(Batches(tensors, 2, seed=1)) == 2
    for a, b in zip(first, again, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    flipped_any = False
    for batch in first:
        for j, i in enumerate(batch["id"].tolist()):
            flipped = not torch.equal(batch["image"][j], x[i])
            flipped_any |= flipped
            assert torch.equal(batch["image"][j], x[i].flip(-1) if flipped else x[i])
            assert torch.equal(batch["mask"][j], batch["image"][j, 0])
    assert flipped_any


def test_zoom_crops_images_and_label_maps_alike() -> None:
    """A zoomed image and its label maps show the same crop: on an x-ramp the bilinear
    image and the nearest-neighbour mask differ by under one step, labels stay labels."""
    ramp = torch.arange(32, dtype=torch.float32).expand(6, 32, 32)
    tensors = {
        "image": ramp[:, None].repeat(1, 3, 1, 1).clone(),
        "mask": ramp.to(torch.uint8).clone(),
        "valid": torch.ones(6, 32, 32, dtype=torch.bool),
        "id": torch.arange(6),
    }
    batches = list(Batches(tensors, 6, seed=3, flip=False, zoom_min=0.5))
    again = list(Batches(tensors, 6, seed=3, flip=False, zoom_min=0.5))
    (batch,) = batches
    assert all(torch.equal(batch[k], again[0][k]) for k in batch)
    assert batch["mask"].dtype == torch.uint8 and batch["valid"].dtype == torch.bool
    assert (batch["image"][:, 0] - batch["mask"].float()).abs().max() <= 1.0
    spans = batch["mask"].float().amax((1, 2)) - batch["mask"].float().amin((1, 2))
    assert (spans < 31).any() and (spans >= 31 * 0.5 - 1).all()  # zoomed, at most 2x
    assert batch["valid"].all()
    assert torch.equal(next(iter(Batches(tensors, 6, flip=False)))["mask"], tensors["mask"])
    with pytest.raises(ValueError, match="zoom_min"):
        Batches(tensors, 6, zoom_min=0)


def test_rejected_pseudo_labels_never_train() -> None:
    """Images in no_pseudo are still targets, but their pseudo pixels are ignored, weight 0."""
    from models.config import PipelineConfig
    from models.context import PipelineContext

    images, masks, tags = make_shapes_dataset(8, 32, seed=5)
    human = [masks[i] if i < 3 else None for i in range(8)]
    data = LabelingData(images, tags, human, 4, no_pseudo=frozenset({5}))
    ctx = PipelineContext.build(
        data, PipelineConfig(image_size=32), torch.device("cpu"), holdout=[]
    )
    n = len(ctx.targets)
    pseudo = torch.ones((n, 32, 32), dtype=torch.uint8)
    weight = torch.ones((n, 32, 32))
    out = ctx.segmenter_tensors(pseudo, weight)
    rows = len(ctx.train_masked) + ctx.targets.index(5)
    other = len(ctx.train_masked) + ctx.targets.index(6)
    assert 5 in ctx.targets
    assert (out["pseudo"][rows] == 255).all() and (out["weight"][rows] == 0).all()
    assert (out["pseudo"][other] == 1).all() and (out["weight"][other] == 1).all()
    assert (pseudo == 1).all(), "the caller's tensors are not modified"
    with pytest.raises(ValueError, match="no_pseudo"):
        LabelingData(images, tags, human, 4, no_pseudo=frozenset({99}))


def test_background_can_be_stated_when_no_mask_tells() -> None:
    """A tags-only project of a dataset without background must never predict class 0."""
    from models.config import PipelineConfig
    from models.context import PipelineContext

    images, _, tags = make_shapes_dataset(6, 32, seed=2, background=False)
    data = LabelingData(images, tags, [None] * 6, 4)
    cpu = torch.device("cpu")
    assert PipelineContext.build(data, PipelineConfig(image_size=32), cpu).has_background
    absent = PipelineConfig(image_size=32, background="absent")
    assert not PipelineContext.build(data, absent, cpu).has_background
    with pytest.raises(ValueError, match="background"):
        PipelineConfig.from_params({"background": "sometimes"})


def test_human_share_repeats_masked_images() -> None:
    """human_share gives the few human masks about that share of every epoch."""
    from models.config import PipelineConfig
    from models.context import PipelineContext

    images, masks, tags = make_shapes_dataset(20, 32, seed=4)
    human = [masks[i] if i < 2 else None for i in range(20)]
    data = LabelingData(images, tags, human, 4)
    cpu = torch.device("cpu")
    plain = PipelineContext.build(
        data, PipelineConfig(image_size=32, human_share=0.0), cpu, holdout=[]
    )
    assert len(plain.lnet_tensors()["image"]) == 20
    ctx = PipelineContext.build(
        data, PipelineConfig(image_size=32, human_share=0.5), cpu, holdout=[]
    )
    assert ctx.human_repeats(18) == 9
    lnet = ctx.lnet_tensors()
    assert len(lnet["image"]) == 2 * 9 + 18 and int(lnet["has_mask"].sum()) == 18
    n = len(ctx.targets)
    seg = ctx.segmenter_tensors(torch.zeros((n, 32, 32), dtype=torch.uint8), torch.ones(n, 32, 32))
    assert int(seg["has_mask"].sum()) == 18 and len(seg["image"]) == 18 + n
    assert (seg["weight"][:18] == 0).all() and (seg["pseudo"][:18] == 255).all()
    assert torch.equal(seg["mask"][:2], seg["mask"][2:4])  # the same two masks, repeated


def test_supervised_tensors_hold_only_human_masks_at_a_full_epochs_size() -> None:
    """The supervised stage trains on human masks alone, repeated to about one epoch of
    every image, so it never sees a pseudo label nor a tag-only image."""
    from models.config import PipelineConfig
    from models.context import PipelineContext

    images, masks, tags = make_shapes_dataset(20, 32, seed=4)
    human = [masks[i] if i < 4 else None for i in range(20)]
    data = LabelingData(images, tags, human, 4)
    ctx = PipelineContext.build(data, PipelineConfig(image_size=32), torch.device("cpu"), [])
    sup = ctx.supervised_tensors()
    assert len(sup["image"]) == 20 and bool(sup["has_mask"].all())
    assert (sup["pseudo"] == 255).all() and (sup["weight"] == 0).all()
    assert (sup["mask"] != 255).any(dim=(1, 2)).all()  # every row is a human mask
    assert torch.equal(sup["image"][:4], sup["image"][4:8])
