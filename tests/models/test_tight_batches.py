"""Tight batches: landscape and portrait images apart, each batch cropped to the box its
images fill, in training (models.loader.Batches) and in the ensemble's inference."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from models.inference import iter_ensemble
from models.loader import Batches, content_box, extents_of
from models.transforms import prepare_images, valid_mask

SIZE = 96


def _photos() -> tuple[Tensor, list[tuple[int, int]]]:
    """Seven 3:2 landscape photos and three portrait ones on a 96 px canvas."""
    rng = np.random.default_rng(0)
    shapes = [(60, 90)] * 7 + [(90, 60)] * 3
    images = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    return prepare_images(images, SIZE)


def test_batches_keep_orientations_apart_and_crop_to_their_content() -> None:
    x, shapes = _photos()
    valid = valid_mask(shapes, SIZE)
    tensors = {"image": x, "valid": valid, "row": torch.arange(len(x))}
    loader = Batches(tensors, 4, seed=1)
    batches = list(loader)
    assert len(batches) == len(loader) == 3  # 7 landscape → 4 + 3, 3 portrait → 3
    seen = []
    for batch in batches:
        rows = batch["row"].tolist()
        seen += rows
        portrait = {r >= 7 for r in rows}
        assert len(portrait) == 1, f"orientations mixed in one batch: {rows}"
        h, w = batch["image"].shape[-2:]
        assert (h, w) == ((96, 64) if portrait.pop() else (64, 96))
        # Nothing of an image is cut: every valid pixel of the canvas is still in the crop.
        assert int(batch["valid"].sum()) == int(valid[rows].sum())
    assert sorted(seen) == list(range(10))
    # The same rows on the square canvas, untouched, when asked for loose batches.
    loose = list(Batches(tensors, 4, seed=1, tight=False))
    assert len(loose) == 3 and all(b["image"].shape[-2:] == (SIZE, SIZE) for b in loose)


def test_no_batch_holds_a_single_sample() -> None:
    """A leftover sample joins a neighbouring batch: batch norm in training mode fails on a
    one-sample batch whose map is 1x1 (the quick profile's 32 px images at the trunk's end)."""
    x, shapes = _photos()
    valid = valid_mask(shapes, SIZE)
    tensors = {"image": x, "valid": valid, "row": torch.arange(len(x))}
    # 7 landscape → 3 + 3 + 1, 3 portrait → 3: the single landscape joins its group's last
    tight = list(Batches(tensors, 3, seed=2))
    assert sorted(len(b["row"]) for b in tight) == [3, 3, 4]
    assert sorted(r for b in tight for r in b["row"].tolist()) == list(range(10))
    # one landscape photo beside three portrait ones: it joins them, cropped to both
    few = {name: t[6:] for name, t in tensors.items()}
    mixed = list(Batches(few, 4, seed=2))
    assert len(mixed) == 1 and mixed[0]["image"].shape[-2:] == (96, 96)
    loose = list(Batches(tensors, 3, seed=2, tight=False))  # 10 → 3 + 3 + 4
    assert [len(b["row"]) for b in loose] == [3, 3, 4]
    assert [len(b["row"]) for b in Batches({"row": torch.arange(1)}, 4)] == [1]


def test_extents_and_box_round_up_to_the_stride() -> None:
    valid = valid_mask([(60, 90), (50, 96)], SIZE)
    assert extents_of(valid).tolist() == [[60, 90], [50, 96]]
    assert content_box(extents_of(valid)) == (64, 96)
    assert content_box(extents_of(valid), multiple=8) == (64, 96)
    assert content_box(torch.tensor([[33, 65]])) == (64, 96)


class _Crop(nn.Module):
    """A stand-in segmenter whose output depends on the input size (a global mean)."""

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean((1, 2, 3), keepdim=True)
        return torch.cat([x[:, :1] * 0, x[:, :1] * 0 + mean], dim=1)


def test_ensemble_sees_each_image_in_its_own_box() -> None:
    """With shapes, each image is predicted as if cropped alone; outside its box the
    probabilities are 0 and the image-level outputs are untouched."""
    x, shapes = _photos()
    allowed = torch.ones(len(x), 2, dtype=torch.bool)
    net = _Crop()
    out = list(
        iter_ensemble(
            [net], None, x, allowed, batch_size=4, device=torch.device("cpu"), shapes=shapes
        )
    )
    probs = torch.cat([b.probs for b in out])
    for i, (h, w) in enumerate(shapes):
        box = content_box(torch.tensor([[h, w]]))
        alone = torch.softmax(net(x[i : i + 1, :, : box[0], : box[1]]), 1)[0]
        assert torch.allclose(probs[i, :, : box[0], : box[1]], alone, atol=1e-6)
        assert (
            probs[i, :, box[0] :, :].abs().sum() == 0 and probs[i, :, :, box[1] :].abs().sum() == 0
        )
    square = torch.cat(
        [
            b.probs
            for b in iter_ensemble(
                [net], None, x, allowed, batch_size=4, device=torch.device("cpu")
            )
        ]
    )
    assert not torch.allclose(square[0, 1, 0, 0], probs[0, 1, 0, 0])  # padding changes the mean


class _Edges(nn.Module):
    """A stand-in segmenter whose logits depend on the scale it sees (a local gradient)."""

    def forward(self, x: Tensor) -> Tensor:
        grad = (x[:, :1, :, 1:] - x[:, :1, :, :-1]).abs()
        grad = nn.functional.pad(grad, (0, 1)) * 5
        return torch.cat([grad, -grad], dim=1)


def test_a_zoomed_pass_runs_on_the_enlarged_box_and_comes_back_to_its_size() -> None:
    """zoom=2 runs the flip-averaged softmax on the box enlarged twice (zero-padded to
    the stride) and resizes it back; zoom=1 is the plain pass."""
    x, shapes = _photos()
    allowed = torch.ones(len(x), 2, dtype=torch.bool)
    net, cpu = _Edges(), torch.device("cpu")

    def probs(zoom: float) -> Tensor:
        batches = iter_ensemble(
            [net], None, x, allowed, batch_size=4, device=cpu, shapes=shapes, zoom=zoom
        )
        return torch.cat([b.probs for b in batches])

    def flip_softmax(image: Tensor) -> Tensor:
        return (torch.softmax(net(image), 1) + torch.softmax(net(image.flip(-1)), 1).flip(-1)) / 2

    plain, zoomed = probs(1.0), probs(2.0)
    assert not torch.allclose(plain, zoomed, atol=1e-3)
    h, w = content_box(torch.tensor([shapes[0]]))  # 64 x 96 -> 128 x 192 (whole)
    crop = x[:1, :, :h, :w]
    big = nn.functional.interpolate(crop, size=(128, 192), mode="bilinear")
    expected = nn.functional.interpolate(flip_softmax(big), size=(h, w), mode="bilinear")
    assert torch.allclose(zoomed[0, :, :h, :w], expected[0], atol=1e-5)
    assert torch.allclose(plain[0, :, :h, :w], flip_softmax(crop)[0], atol=1e-6)
    # a box that is not whole at the zoomed size is padded to the stride and cut back
    odd = probs(1.3)
    assert odd.shape == plain.shape and torch.isfinite(odd).all()
