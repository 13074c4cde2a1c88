"""CutMix between pseudo-labelled rows (models.mixing): labels follow their pixels, human
rows stay whole, tags gain what was pasted, the loader wrapper is seeded, and segmenters
trained on mixed rows still learn (scored on held-out images)."""

from __future__ import annotations

import functools

import torch

from models.loader import Batches, PerturbedBatches
from models.mixing import cutmix_pseudo
from tests.models.segmenter_probe import segmenter_miou_on_unseen

SIZE, CLASSES = 24, 6


def _batch(rows: int = 6, humans: int = 2) -> dict[str, torch.Tensor]:
    """Row r: every pixel's image value and weight r, pseudo label and tag class r % 6 + 1;
    the first ``humans`` rows carry a human mask instead of pseudo labels."""
    r = torch.arange(rows, dtype=torch.float32)[:, None, None]
    k = (torch.arange(rows) % CLASSES + 1).float()[:, None, None].expand(rows, SIZE, SIZE)
    plane = r.expand(rows, SIZE, SIZE)
    has_mask = torch.arange(rows) < humans
    tags = torch.zeros(rows, CLASSES)
    for row in range(rows):
        tags[row, row % CLASSES] = 1.0  # class row % 6 + 1 sits in column row % 6
    pseudo = k.to(torch.uint8)
    pseudo[has_mask] = 255
    mask = torch.full((rows, SIZE, SIZE), 255, dtype=torch.uint8)
    mask[has_mask] = k[has_mask].to(torch.uint8)
    return {
        "image": plane[:, None].expand(rows, 3, SIZE, SIZE).clone(),
        "mask": mask,
        "pseudo": pseudo,
        "weight": plane.clone(),
        "valid": torch.ones(rows, SIZE, SIZE, dtype=torch.bool),
        "tags": tags,
        "has_mask": has_mask,
    }


def test_every_pseudo_row_gets_one_box_from_another_row_and_its_labels_follow() -> None:
    batch = _batch()
    out = cutmix_pseudo(batch, torch.Generator().manual_seed(0), prob=1.0)
    for row in range(2, 6):
        source = out["image"][row, 0]
        others = source != row
        assert others.any(), f"row {row} was not mixed"
        partners = source[others].unique()
        assert len(partners) == 1 and int(partners) >= 2  # one partner, never a human row
        partner = int(partners)
        assert partner != row
        share = float(others.float().mean())
        assert 0.2 <= share <= 0.55
        ys, xs = torch.nonzero(others, as_tuple=True)  # a box: its bounding box is full
        assert int(others.sum()) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        # labels, weights and the image move together
        assert torch.equal(out["pseudo"][row][others], torch.full_like(ys, partner + 1).byte())
        assert torch.equal(out["weight"][row][others], torch.full_like(ys, partner).float())
        assert torch.equal(
            out["pseudo"][row][~others], torch.full_like(out["pseudo"][row][~others], row + 1)
        )
        # own tag kept, the pasted category's tag added, nothing else
        assert out["tags"][row].nonzero().flatten().tolist() == sorted({row, partner})
    for row in range(2):  # human rows untouched
        for name in ("image", "mask", "pseudo", "weight", "tags"):
            assert torch.equal(out[name][row], batch[name][row])


def test_a_pasted_box_of_ignored_pixels_adds_no_tag() -> None:
    batch = _batch(rows=4, humans=0)
    batch["pseudo"][:] = 255
    out = cutmix_pseudo(batch, torch.Generator().manual_seed(1), prob=1.0)
    assert not torch.equal(out["image"], batch["image"])
    assert torch.equal(out["tags"], batch["tags"])


def test_off_or_too_few_pseudo_rows_leave_the_batch_as_it_was() -> None:
    batch = _batch()
    for prob, b in ((0.0, batch), (1.0, _batch(rows=3, humans=2))):
        out = cutmix_pseudo(b, torch.Generator().manual_seed(0), prob=prob)
        for name, t in b.items():
            assert torch.equal(out[name], t)


def test_the_wrapped_loader_is_seeded_and_keeps_its_length() -> None:
    tensors = _batch(rows=12, humans=4)

    def epoch(seed: int) -> list[torch.Tensor]:
        loader = PerturbedBatches(
            Batches(tensors, 6, seed=0, tight=False),
            [functools.partial(cutmix_pseudo, prob=1.0)],
            seed=seed,
        )
        assert len(loader) == 2
        return [b["image"] for b in loader]

    first, again, other = epoch(3), epoch(3), epoch(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_segmenters_learn_from_mixed_pseudo_labels() -> None:
    plain, mixed = segmenter_miou_on_unseen(), segmenter_miou_on_unseen(cutmix=1.0)
    print(f"\nheld-out mIoU: plain {plain:.3f}, every pseudo row mixed {mixed:.3f}")
    assert mixed >= 0.6
    assert mixed >= plain - 0.05
