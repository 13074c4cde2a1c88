"""Segmentation metrics: confusion matrix over 0..K ignoring 255, per-class IoU, mIoU."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

IGNORE = 255


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_labels: int) -> np.ndarray:
    """Counts[gt, pred] over pixels whose ground truth is not 255.

    A predicted label outside 0..num_labels-1 (e.g. 255, "no label") lands in an extra
    last column: it is a miss for the true class and a hit for none.

    Shape:
        pred, gt (H, W) → (num_labels, num_labels + 1) int64
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ")
    labelled = gt != IGNORE
    truth = gt[labelled].astype(np.int64)
    guess = pred[labelled].astype(np.int64)
    guess = np.where((guess >= 0) & (guess < num_labels), guess, num_labels)
    counts = np.bincount(truth * (num_labels + 1) + guess, minlength=num_labels * (num_labels + 1))
    return counts.reshape(num_labels, num_labels + 1)


def accumulate(
    preds: Iterable[np.ndarray], gts: Iterable[np.ndarray], num_labels: int
) -> np.ndarray:
    """Sum of confusion matrices over image pairs."""
    total = np.zeros((num_labels, num_labels + 1), dtype=np.int64)
    for pred, gt in zip(preds, gts, strict=True):
        total += confusion_matrix(pred, gt, num_labels)
    return total


def class_iou(cm: np.ndarray) -> np.ndarray:
    """IoU_c = TP / (TP + FP + FN); NaN for a class absent from both ground truth and prediction.

    Shape:
        cm (C, C+1) → (C,) float64
    """
    tp = np.diag(cm[:, :-1]).astype(np.float64)
    fn = cm.sum(1) - tp
    fp = cm[:, :-1].sum(0) - tp
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(iou: np.ndarray, classes: Sequence[int] | None = None) -> float | None:
    """Mean IoU over ``classes`` (all by default) that appear in ground truth or prediction."""
    values = iou if classes is None else iou[list(classes)]
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def summarize(cm: np.ndarray, strong: Sequence[int], weak: Sequence[int]) -> dict[str, object]:
    """mIoU all / strong / weak (None when no such class appears) and per-class IoU by index.

    ``miou_gt`` averages only classes with ground-truth pixels: with partial masks a class
    the annotator never painted would otherwise enter as IoU 0 as soon as it is predicted
    on a labelled pixel (that error still lowers the true class's IoU).
    """
    iou = class_iou(cm)
    in_gt = [c for c in range(len(iou)) if cm[c].sum() > 0]
    return {
        "miou": mean_iou(iou),
        "miou_gt": mean_iou(iou, in_gt),
        "miou_strong": mean_iou(iou, strong),
        "miou_weak": mean_iou(iou, weak),
        "iou": {str(c): round(float(v), 6) for c, v in enumerate(iou) if not np.isnan(v)},
        "pixels": int(cm.sum()),
    }


def evaluate(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    num_labels: int,
    strong: Sequence[int],
    weak: Sequence[int],
) -> dict[str, object]:
    """summarize(accumulate(...)): the held-out report of one stage."""
    return summarize(accumulate(preds, gts, num_labels), strong, weak)
