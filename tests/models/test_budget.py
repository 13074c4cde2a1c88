"""Budget ranking: evidence per image, and a greedy pick that spreads over categories."""

from __future__ import annotations

import numpy as np
import pytest

from models.budget import image_signals, rank_for_annotation


def test_image_signals() -> None:
    confidence = np.array([[1.0, 0.5], [0.5, 1.0]])
    agree = np.array([[True, False], [True, True]])
    signals = image_signals(confidence, agree, np.array([0.2, 0.6]))
    assert signals == {
        "uncertainty": 0.25,
        "disagreement": 0.25,
        "low_region_score": pytest.approx(0.6),
    }


def _signals(value: float) -> dict[str, float]:
    return {"uncertainty": value, "disagreement": value, "low_region_score": value}


def test_greedy_pick_covers_categories_not_copies_of_one_hard_case() -> None:
    # five very hard images of category 1, one easier image each of categories 2 and 3
    candidates = [10, 11, 12, 13, 14, 20, 30]
    signals = [_signals(0.9)] * 5 + [_signals(0.4), _signals(0.3)]
    tags = [frozenset({1})] * 5 + [frozenset({2}), frozenset({3})]
    order = rank_for_annotation(candidates, signals, tags, mask_counts=[5, 0, 0, 0])
    first_three = [item.index for item in order[:3]]
    assert 20 in first_three and 30 in first_three
    assert sum(i < 20 for i in first_three) == 1
    assert sorted(item.index for item in order) == sorted(candidates)
    assert order[0].reasons["new_categories"] == [1]
    # without the diversity bonus and rarity, the hard copies come first
    plain = rank_for_annotation(candidates, signals, tags, mask_counts=[5, 9, 9, 9], diversity=0.0)
    assert [item.index for item in plain[:5]] == [10, 11, 12, 13, 14]


def test_rare_categories_earn_a_bonus() -> None:
    tags = [frozenset({1}), frozenset({2})]
    order = rank_for_annotation(
        [0, 1], [_signals(0.5)] * 2, tags, mask_counts=[9, 9, 0], diversity=0.0
    )
    assert order[0].index == 1
    assert order[0].reasons["rare_categories"] == 1.0
    assert order[1].reasons["rare_categories"] == 0.25  # 9 masks: 3 / (3 + 9)


def test_rarity_keeps_ranking_categories_past_min_masks() -> None:
    """Both categories have min_masks already: the one with fewer masks still comes first."""
    tags = [frozenset({1}), frozenset({2})]
    order = rank_for_annotation(
        [0, 1], [_signals(0.5)] * 2, tags, mask_counts=[9, 40, 4], diversity=0.0
    )
    assert [item.index for item in order] == [1, 0]


def test_badly_segmented_or_unmeasured_categories_earn_a_bonus() -> None:
    """Equal evidence and counts: the image of the category the held-out masks show worst
    (or do not show) comes first, and the reason says so."""
    tags = [frozenset({1}), frozenset({2}), frozenset({3})]
    order = rank_for_annotation(
        [0, 1, 2],
        [_signals(0.5)] * 3,
        tags,
        mask_counts=[9, 9, 9, 9],
        diversity=0.0,
        class_quality={1: 0.9, 2: 0.2},
    )
    assert [item.index for item in order] == [2, 1, 0]
    assert order[0].reasons["low_category_quality"] == 1.0
    assert order[1].reasons["low_category_quality"] == pytest.approx(0.8)
    assert order[2].reasons["low_category_quality"] == pytest.approx(0.1)
