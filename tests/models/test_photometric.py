"""Colour jitter of pseudo-labelled rows (models.photometric): only those rows change,
labels and padding stay, the blur keeps a flat image flat, and segmenters trained on
jittered rows still learn (scored on held-out images)."""

from __future__ import annotations

import functools

import torch

from models.loader import Batches, PerturbedBatches
from models.mixing import cutmix_pseudo
from models.photometric import gaussian_blur, jitter_pseudo
from tests.models.segmenter_probe import segmenter_miou_on_unseen

ROWS, HUMANS, H, W = 8, 3, 20, 28


def _batch() -> dict[str, torch.Tensor]:
    """Random normalised photos, padding (``valid`` False, image 0) right of column 22;
    the first HUMANS rows carry human masks."""
    generator = torch.Generator().manual_seed(5)
    valid = torch.ones(ROWS, H, W, dtype=torch.bool)
    valid[:, :, 22:] = False
    image = torch.randn(ROWS, 3, H, W, generator=generator) * valid[:, None]
    has_mask = torch.arange(ROWS) < HUMANS
    pseudo = torch.randint(0, 4, (ROWS, H, W), dtype=torch.uint8, generator=generator)
    return {
        "image": image,
        "pseudo": pseudo,
        "weight": torch.rand(ROWS, H, W, generator=generator),
        "valid": valid,
        "tags": torch.ones(ROWS, 3),
        "has_mask": has_mask,
    }


def test_only_pseudo_rows_change_and_labels_and_padding_stay() -> None:
    batch = _batch()
    out = jitter_pseudo(batch, torch.Generator().manual_seed(0), prob=1.0)
    for row in range(ROWS):
        moved = float((out["image"][row] - batch["image"][row]).abs().mean())
        if row < HUMANS:
            assert moved == 0.0, f"human row {row} was perturbed"
        else:
            assert moved > 1e-3, f"pseudo row {row} was left as it was"
    assert float(out["image"][..., 22:].abs().max()) == 0.0  # padding stays the mean colour
    for name in ("pseudo", "weight", "valid", "tags", "has_mask"):
        assert torch.equal(out[name], batch[name])
    # The input batch itself is not written to.
    assert torch.equal(batch["image"], _batch()["image"])


def test_prob_zero_is_the_identity_and_draws_are_seeded() -> None:
    batch = _batch()
    assert jitter_pseudo(batch, torch.Generator().manual_seed(0), prob=0.0) is batch
    first = jitter_pseudo(batch, torch.Generator().manual_seed(1), prob=0.5)["image"]
    again = jitter_pseudo(batch, torch.Generator().manual_seed(1), prob=0.5)["image"]
    other = jitter_pseudo(batch, torch.Generator().manual_seed(2), prob=0.5)["image"]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_blur_keeps_a_flat_image_and_smooths_an_edge() -> None:
    flat = torch.full((3, 12, 12), 7.0)
    assert torch.allclose(gaussian_blur(flat, 1.5), flat)
    edge = torch.zeros(1, 12, 12)
    edge[:, :, 6:] = 1.0
    blurred = gaussian_blur(edge, 1.0)
    assert 0.0 < float(blurred[0, 5, 5]) < 0.5 < float(blurred[0, 5, 6]) < 1.0
    assert torch.allclose(blurred.sum(), edge.sum(), atol=1e-4)  # reflect padding, symmetric


def test_each_perturbation_keeps_its_own_draws() -> None:
    """Turning jitter on after CutMix leaves CutMix's boxes where they were."""
    tensors = _batch()

    def labels(perturbations: list) -> list[torch.Tensor]:
        loader = PerturbedBatches(Batches(tensors, 4, seed=0, tight=False), perturbations, 3)
        return [b["pseudo"] for b in loader]

    cut = functools.partial(cutmix_pseudo, prob=1.0)
    jitter = functools.partial(jitter_pseudo, prob=1.0)
    alone, both = labels([cut]), labels([cut, jitter])
    assert all(torch.equal(a, b) for a, b in zip(alone, both, strict=True))


def test_segmenters_learn_from_jittered_pseudo_labels() -> None:
    plain, jittered = segmenter_miou_on_unseen(), segmenter_miou_on_unseen(photometric=1.0)
    print(f"\nheld-out mIoU: plain {plain:.3f}, every pseudo row jittered {jittered:.3f}")
    assert jittered >= 0.6
    assert jittered >= plain - 0.05
