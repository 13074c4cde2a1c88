"""CutMix between pseudo-labelled images: the strong perturbation self-training needs.

A student trained on its teacher's own label maps of the same, unperturbed photos learns
to repeat the teacher, including its mistakes (MSRC semi: P-Net, continued on the
supervised nets' filtered labels, ended 0.02-0.03 val mIoU below them). Semi-supervised
segmentation work (French et al., BMVC 2020) found box-shaped cut-and-paste between
unlabelled images the perturbation that makes such consistency training pay: the pasted
box carries its own pseudo labels, so every label stays right while the context around
each object changes.

Only rows without a human mask are mixed, and only with each other: human masks are
the one clean signal and stay whole.
"""

from __future__ import annotations

import torch
from torch import Tensor

from models.transforms import IGNORE


def cutmix_pseudo(
    batch: dict[str, Tensor], generator: torch.Generator, prob: float
) -> dict[str, Tensor]:
    """Paste a random box of another pseudo-labelled row into each pseudo-labelled row
    (chosen with probability ``prob``).

    Every spatial tensor (3+ dimensions: image, mask, pseudo, weight, valid) takes the
    box from the same partner, so labels and weights follow their pixels. The row's tags
    gain the partner's categories that its pseudo labels put inside the box (a tag whose
    pixels were not pasted would ask the tag loss for an object that is not there); its
    own tags stay. Box area is a uniform 25-50 % of the batch's frame.
    """
    unmasked = torch.nonzero(~batch["has_mask"]).flatten()
    n = len(unmasked)
    if n < 2 or prob <= 0:
        return batch
    # Partner: a random derangement of the pseudo-labelled rows (a shuffled cycle).
    cycle = unmasked[torch.randperm(n, generator=generator)]
    partner = dict(zip(cycle.tolist(), torch.roll(cycle, 1).tolist(), strict=True))
    chosen = torch.rand(n, generator=generator) < prob
    height, width = batch["image"].shape[-2:]
    classes = batch["tags"].shape[1]
    out = {name: t.clone() for name, t in batch.items()}
    for row, pick in zip(unmasked.tolist(), chosen.tolist(), strict=True):
        area = 0.25 + 0.25 * float(torch.rand(1, generator=generator))
        aspect = float(torch.empty(1).uniform_(0.5, 2.0, generator=generator))
        bh = min(height, max(1, round((area * height * width * aspect) ** 0.5)))
        bw = min(width, max(1, round(area * height * width / bh)))
        top = int(torch.randint(0, height - bh + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - bw + 1, (1,), generator=generator))
        if not pick:
            continue
        src = partner[row]
        box = (..., slice(top, top + bh), slice(left, left + bw))
        for name, t in batch.items():
            if t.ndim >= 3:
                out[name][row][box] = t[src][box]
        pasted = batch["pseudo"][src][box]
        present = torch.bincount(pasted[pasted != IGNORE].long().flatten(), minlength=classes + 1)
        present = present[1 : classes + 1]
        gained = batch["tags"][src] * (present > 0)
        out["tags"][row] = torch.maximum(batch["tags"][row], gained)
    return out
