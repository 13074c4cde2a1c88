"""Confusion matrix, IoU and mIoU against hand-counted examples."""

from __future__ import annotations

import numpy as np
import pytest

from models.metrics import (
    accumulate,
    class_iou,
    confusion_matrix,
    evaluate,
    mean_iou,
    summarize,
)


def test_confusion_matrix_by_hand_ignoring_255() -> None:
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 255]], dtype=np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 255, 0, 2]], dtype=np.uint8)
    cm = confusion_matrix(pred, gt, 3)
    expected = np.array(
        [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 1, 1]]
    )  # last column: predicted 255 (a miss)
    np.testing.assert_array_equal(cm, expected)
    iou = class_iou(cm)
    np.testing.assert_allclose(iou, [1 / 2, 2 / 3, 1 / 2])
    assert mean_iou(iou) == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)


def test_miou_counts_only_classes_present() -> None:
    gt = np.array([[1, 1, 0, 0]], dtype=np.uint8)
    perfect = confusion_matrix(gt.copy(), gt, 4)
    iou = class_iou(perfect)
    assert np.isnan(iou[2]) and np.isnan(iou[3])
    assert mean_iou(iou) == 1.0
    # a class only predicted (false positive) counts with IoU 0
    pred = np.array([[1, 3, 0, 0]], dtype=np.uint8)
    iou = class_iou(confusion_matrix(pred, gt, 4))
    assert iou[3] == 0.0
    assert mean_iou(iou) == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert mean_iou(iou, [2]) is None
    report = summarize(confusion_matrix(pred, gt, 4), strong=[1], weak=[2, 3])
    assert report["miou"] == pytest.approx(0.5)
    assert report["miou_gt"] == pytest.approx(0.75)  # class 3 has no ground-truth pixel
    assert report["miou_weak"] == 0.0


def test_evaluate_reports_strong_and_weak() -> None:
    gt = [np.array([[0, 1, 2, 2]], dtype=np.uint8), np.array([[0, 0, 1, 255]], dtype=np.uint8)]
    pred = [np.array([[0, 1, 2, 0]], dtype=np.uint8), np.array([[0, 0, 1, 1]], dtype=np.uint8)]
    report = evaluate(pred, gt, 3, strong=[1], weak=[2])
    assert report["miou_strong"] == 1.0
    assert report["miou_weak"] == pytest.approx(0.5)
    assert report["iou"] == {"0": pytest.approx(0.75), "1": 1.0, "2": 0.5}
    assert report["pixels"] == 7
    np.testing.assert_array_equal(
        accumulate(pred, gt, 3),
        confusion_matrix(pred[0], gt[0], 3) + confusion_matrix(pred[1], gt[1], 3),
    )
