"""Completing partially painted human masks before the segmenters train on them.

An annotator who paints some of an image's tagged categories and leaves the others
unpainted (255) says two things: the painted pixels are right, and an unpainted pixel is
not of a painted category (it would have been painted). So the unpainted pixels of such a
mask belong to the tags it left out, or to the background where the data has one and the
mask paints none (a mask that paints background has painted all of it). L-Net labels them
over exactly those candidates, which is a far easier choice than labelling a tag-only
image over all of its tags: with one candidate it is no choice at all.

Without completion those pixels are ignored, and a category that annotators never paint
learns only from the images that have no mask at all (on MSRC-v2 with half the
categories painted, 269 of 328 masked training images leave a tagged category unpainted,
on 56 % of their pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from models.data import IGNORE
from models.transforms import multi_hot


def unpainted_tags(mask: np.ndarray, tags: frozenset[int]) -> frozenset[int]:
    """The image's tags that its (full-size) human mask does not paint anywhere."""
    return tags - frozenset(int(c) for c in np.unique(mask))


@dataclass(frozen=True)
class PartialMasks:
    """The partially painted masks of a run and what their unpainted pixels may be."""

    indices: list[int]  # image indices
    tags: list[frozenset[int]]  # per image, the tags its mask leaves unpainted
    background: list[bool]  # per image, whether background is still a candidate

    def __len__(self) -> int:
        return len(self.indices)

    def candidates(self, num_classes: int) -> Tensor:
        """(len, K+1) bool, per partial mask in ``indices`` order, the classes its
        unpainted pixels may hold (column 0: background)."""
        background = torch.tensor(self.background, dtype=torch.float32)[:, None]
        return torch.cat([background, multi_hot(self.tags, num_classes)], dim=1) > 0

    def entangled(self) -> list[int]:
        """Left-out categories that no mask leaves out alone (with background closed).

        The candidates loss only asks an unpainted pixel to be one of its candidates, so a
        category that always shares its set with another can be met by calling its pixels
        that neighbour: on MSRC-v2 transfer, aeroplane is left out only beside grass (and
        building) and mountain beside water or building, and the segmenters ended at 0.00
        val IoU on both while every category left out alone somewhere was learned.
        """
        left_out = set().union(*self.tags) if self.tags else set()
        alone = {
            next(iter(tags))
            for tags, background in zip(self.tags, self.background, strict=True)
            if len(tags) == 1 and not background
        }
        return sorted(left_out - alone)


def partial_images(
    masks: Sequence[np.ndarray | None],
    tags: Sequence[frozenset[int]],
    indices: Sequence[int],
    has_background: bool,
) -> PartialMasks:
    """Those of ``indices`` whose mask leaves a tag unpainted and has unpainted pixels.

    Presence is read from the full-size mask, so a small painted object that resizing to
    training size would lose is still counted as painted.
    """
    chosen: list[int] = []
    missing: list[frozenset[int]] = []
    background: list[bool] = []
    for i in indices:
        mask = masks[i]
        if mask is None or not (mask == IGNORE).any():
            continue
        left_out = unpainted_tags(mask, tags[i])
        if left_out:
            chosen.append(i)
            missing.append(left_out)
            background.append(has_background and not (mask == 0).any())
    return PartialMasks(chosen, missing, background)


def keep_classes(labels: Tensor, classes: Sequence[int]) -> Tensor:
    """``labels`` with every class outside ``classes`` set to 255 (left unpainted)."""
    keep = torch.isin(labels.long(), torch.tensor(list(classes), dtype=torch.long))
    return torch.where(keep, labels, torch.full_like(labels, IGNORE))


def complete_masks(masks: Tensor, labels: Tensor, valid: Tensor) -> Tensor:
    """Fill the unpainted, in-image pixels of ``masks`` with ``labels`` (255 stays 255).

    Shape:
        masks (N, S, S) uint8, labels (N, S, S) uint8 over the left-out tags, valid (N, S, S)
        bool → (N, S, S) uint8
    """
    fill = (masks == IGNORE) & valid & (labels != IGNORE)
    return torch.where(fill, labels.to(masks.dtype), masks)
