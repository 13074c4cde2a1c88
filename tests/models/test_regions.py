"""Superpixel voting, region relevance scores, filtering and weights, region boxes."""

from __future__ import annotations

import numpy as np
import pytest

from models.regions import (
    filter_regions,
    padded_superpixels,
    region_boxes,
    region_scores,
    superpixel_vote,
)

# two regions side by side, the right column is padding
SEGMENTS = np.array([[0, 0, 1, 1, -1], [0, 0, 1, 1, -1]])


def test_majority_vote_fills_agreeing_superpixels_only() -> None:
    labels = np.array([[2, 2, 1, 3, 255], [2, 255, 3, 1, 255]], dtype=np.uint8)
    out = superpixel_vote(labels, SEGMENTS, agreement=0.6, num_labels=4)
    # region 0: all three voters say 2 → the ignored pixel is filled; region 1 is split 50/50
    assert out.tolist() == [[2, 2, 1, 3, 255], [2, 2, 3, 1, 255]]


def test_region_score_is_real_probability_times_agreement() -> None:
    real = np.array([[0.8, 0.8, 0.5, 0.5, 0.0], [0.8, 0.8, 0.5, 0.5, 0.0]])
    agree = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    scores = region_scores(SEGMENTS, real, agree)
    np.testing.assert_allclose(scores, [0.8 * 0.75, 0.5 * 0.25], rtol=1e-6)


def test_low_relevance_regions_ignored_kept_ones_weighted() -> None:
    labels = np.array([[1, 1, 2, 2, 255], [1, 255, 2, 2, 255]], dtype=np.uint8)
    scores = np.array([0.6, 0.1], dtype=np.float32)
    filtered, weights = filter_regions(labels, SEGMENTS, scores, theta_r=0.3)
    assert filtered.tolist() == [[1, 1, 255, 255, 255], [1, 255, 255, 255, 255]]
    np.testing.assert_allclose(weights, [[0.6, 0.6, 0, 0, 0], [0.6, 0, 0, 0, 0]])


def test_region_boxes_scaled_to_original() -> None:
    boxes = region_boxes(SEGMENTS, np.array([0.6, 0.1]), scale=(2.0, 2.0))
    assert boxes == [
        {"id": 0, "bbox": [0, 0, 4, 4], "score": pytest.approx(0.6)},
        {"id": 1, "bbox": [4, 0, 8, 4], "score": pytest.approx(0.1)},
    ]


def test_superpixels_follow_a_colour_edge_and_skip_padding() -> None:
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[0, :, 12:24] = 255  # valid area is 32 x 24; a white band on the right
    segments = padded_superpixels(image, [(32, 24)], n_segments=8, compactness=10.0)[0]
    assert (segments[:, 24:] == -1).all() and (segments[:, :24] >= 0).all()
    # no superpixel straddles the black/white edge
    left, right = set(np.unique(segments[:, :12])), set(np.unique(segments[:, 12:24]))
    assert not left & right
