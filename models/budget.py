"""Annotation budget: rank unmasked images by the expected gain of a human mask, greedily.

Gain = mean(uncertainty, S_a/S_b disagreement, low region scores) + a bonus for categories
with few masks (diminishing as masks accrue, never zero) + a bonus for categories the
held-out masks show segmented badly (or do not show at all) + a diversity bonus for
categories the picks so far do not cover. Each pick counts as one more mask for its
categories, so the order spreads over categories instead of repeating one hard case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

SIGNALS = ("uncertainty", "disagreement", "low_region_score")


@dataclass(frozen=True)
class BudgetItem:
    """One image in pick order, its gain at pick time and the parts of that gain."""

    index: int
    score: float
    reasons: dict[str, float | list[int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "score": self.score, "reasons": dict(self.reasons)}


def image_signals(
    confidence: np.ndarray, agree: np.ndarray, region_scores: np.ndarray
) -> dict[str, float]:
    """Per-image evidence: mean(1 - confidence), disagreement share, 1 - mean region score.

    Args:
        confidence: (H, W) max class probability in [0, 1].
        agree: (H, W) bool, True where S_a and S_b pick the same class.
        region_scores: (n_regions,) relevance scores in [0, 1].
    """
    return {
        "uncertainty": float(np.mean(1.0 - confidence)),
        "disagreement": float(1.0 - np.mean(agree)),
        "low_region_score": float(1.0 - np.mean(region_scores)) if len(region_scores) else 0.0,
    }


def rank_for_annotation(
    candidates: Sequence[int],
    signals: Sequence[Mapping[str, float]],
    tags: Sequence[frozenset[int]],
    mask_counts: Sequence[int],
    *,
    min_masks: int = 3,
    diversity: float = 0.5,
    class_quality: Mapping[int, float] | None = None,
) -> list[BudgetItem]:
    """Greedy order of ``candidates`` (image indices) by expected gain of a human mask.

    Args:
        candidates: image indices, aligned with ``signals`` and ``tags``.
        signals: per candidate, the values named in SIGNALS (see image_signals).
        tags: per candidate, its categories.
        mask_counts: (K+1,) human masks per class so far.
        min_masks: the rarity scale: a category with n masks earns min_masks / (min_masks
            + n), 1 with none, 1/2 at min_masks. It decays rather than stopping at
            min_masks because a class-averaged score (mIoU) keeps gaining from masks of the
            categories that have the fewest, long after each has a handful.
        diversity: bonus weight for the share of an image's categories not yet covered.
        class_quality: held-out IoU per class of the delivered segmenters; an image earns
            mean(1 - IoU) over its categories (a category without held-out evidence counts
            as IoU 0: nothing shows it is learned). None: no such bonus.
    """
    counts = np.asarray(mask_counts, dtype=np.float64).copy()
    base = [float(np.mean([s[name] for name in SIGNALS])) for s in signals]
    everything = set().union(*tags) if tags else set()
    covered: set[int] = set()
    remaining = list(range(len(candidates)))
    order: list[BudgetItem] = []
    while remaining:
        best, best_gain, best_parts = -1, -np.inf, {}
        for j in remaining:
            t = tags[j]
            rarity = float(np.mean([min_masks / (min_masks + counts[k]) for k in t])) if t else 0.0
            new = sorted(t - covered)
            gap = (
                float(np.mean([1.0 - class_quality.get(k, 0.0) for k in t]))
                if t and class_quality is not None
                else 0.0
            )
            gain = base[j] + rarity + gap + diversity * len(new) / max(1, len(t))
            if gain > best_gain:
                best, best_gain = j, gain
                best_parts = {
                    **{n: round(signals[j][n], 4) for n in SIGNALS},
                    "rare_categories": round(rarity, 4),
                    "low_category_quality": round(gap, 4),
                    "new_categories": new,
                }
        remaining.remove(best)
        order.append(BudgetItem(candidates[best], round(best_gain, 4), best_parts))
        for k in tags[best]:
            counts[k] += 1
        covered |= tags[best]
        if covered >= everything:
            covered = set()
    return order
