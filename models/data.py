"""The pipeline's input container, category statistics and the seeded held-out split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IGNORE = 255


@dataclass
class LabelingData:
    """Images with tags and optional (possibly partial) human masks.

    Attributes:
        images: HxWx3 uint8 arrays, any sizes.
        tags: per image, the tagged class indices (1..K).
        masks: per image, an HxW uint8 class-index mask (0..K, 255 = unlabelled) or None.
        num_classes: K, categories without background.
        class_names: optional K+1 names, index 0 = background.
        no_pseudo: indices of images whose pseudo-labels must not train a network
            (reviewers rejected them); they are still labelled.
    """

    images: list[np.ndarray]
    tags: list[frozenset[int]]
    masks: list[np.ndarray | None]
    num_classes: int
    class_names: list[str] | None = None
    # Images whose pseudo-labels reviewers rejected: still labelled, never trained on.
    no_pseudo: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.tags) != n or len(self.masks) != n:
            raise ValueError(
                f"images ({n}), tags ({len(self.tags)}) and masks "
                f"({len(self.masks)}) must have the same length"
            )
        if self.num_classes < 1:
            raise ValueError("num_classes must be at least 1")
        self.tags = [frozenset(int(t) for t in tags) for tags in self.tags]
        self.no_pseudo = frozenset(int(i) for i in self.no_pseudo)
        if any(not 0 <= i < n for i in self.no_pseudo):
            raise ValueError(f"no_pseudo holds indices outside 0..{n - 1}")
        for i, (image, tags, mask) in enumerate(
            zip(self.images, self.tags, self.masks, strict=True)
        ):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(
                    f"image {i}: expected HxWx3 uint8, got {image.shape} {image.dtype}"
                )
            if any(t < 1 or t > self.num_classes for t in tags):
                raise ValueError(f"image {i}: tags {sorted(tags)} outside 1..{self.num_classes}")
            if mask is None:
                continue
            if mask.shape != image.shape[:2]:
                raise ValueError(f"image {i}: mask {mask.shape} vs image {image.shape[:2]}")
            labelled = mask[mask != IGNORE]
            if labelled.size and int(labelled.max()) > self.num_classes:
                raise ValueError(
                    f"image {i}: mask holds class {int(labelled.max())} > {self.num_classes}"
                )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def masked(self) -> list[int]:
        """Indices of images with a human mask."""
        return [i for i, m in enumerate(self.masks) if m is not None]

    @property
    def unmasked(self) -> list[int]:
        """Indices of images without a human mask."""
        return [i for i, m in enumerate(self.masks) if m is None]

    def mask_counts(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """(K+1,) number of human masks holding at least one pixel of each class."""
        counts = np.zeros(self.num_classes + 1, dtype=np.int64)
        for i in self.masked if indices is None else indices:
            mask = self.masks[i]
            if mask is not None:
                present = np.unique(mask)
                counts[present[present != IGNORE]] += 1
        return counts

    @property
    def has_background(self) -> bool:
        """Whether class 0 occurs in any human mask (True when there is no mask at all)."""
        return not self.masked or bool(self.mask_counts()[0] > 0)

    def strong_classes(self, min_masks: int) -> list[int]:
        """Categories (1..K) held by at least ``min_masks`` human masks."""
        counts = self.mask_counts()
        return [k for k in range(1, self.num_classes + 1) if counts[k] >= min_masks]

    def weak_classes(self, min_masks: int) -> list[int]:
        strong = set(self.strong_classes(min_masks))
        return [k for k in range(1, self.num_classes + 1) if k not in strong]


def holdout_split(data: LabelingData, fraction: float, seed: int) -> list[int]:
    """Seeded held-out slice of the human-masked images, sorted.

    Takes round(fraction · masked) images, and only images whose removal leaves every class
    they hold at least one training mask, so no category loses all its masks.
    """
    masked = data.masked
    wanted = round(fraction * len(masked))
    if wanted == 0 or len(masked) < 2:
        return []
    order = np.random.default_rng(seed).permutation(len(masked))
    remaining = data.mask_counts()
    chosen: list[int] = []
    for position in order:
        index = masked[int(position)]
        present = np.unique(data.masks[index])  # type: ignore[arg-type]
        present = present[present != IGNORE]
        if np.all(remaining[present] > 1):
            remaining[present] -= 1
            chosen.append(index)
            if len(chosen) == wanted:
                break
    return sorted(chosen)
