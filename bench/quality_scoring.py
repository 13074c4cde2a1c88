"""Scores of the quality benchmark: mIoU of label maps against full masks, and the val
predictions of a model state (models.pipeline.predict / predict_transfer) scored."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.quality_data import Dataset, Setting
from models.config import PipelineConfig
from models.metrics import evaluate
from models.pipeline import predict, predict_transfer


def round_or_none(value: Any, digits: int = 4) -> Any:
    return None if value is None else round(float(value), digits)


def score(
    preds: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    num_classes: int,
    strong: Sequence[int],
    weak: Sequence[int],
) -> dict[str, Any]:
    """mIoU all / strong / weak of label maps (255 in a prediction counts as a miss), plus
    coverage (share of labelled ground-truth pixels the maps give a class) and the mIoU
    over the pixels they do label (``miou_labelled``; differs only where maps hold 255)."""
    if not preds:
        return {"miou": None, "miou_strong": None, "miou_weak": None, "coverage": None}
    report = evaluate(list(preds), list(gts), num_classes + 1, strong, weak)
    labelled = sum(int((g != 255).sum()) for g in gts)
    covered = sum(int(((g != 255) & (p != 255)).sum()) for p, g in zip(preds, gts, strict=True))
    out = {
        "miou": round_or_none(report["miou"]),
        "miou_strong": round_or_none(report["miou_strong"]),
        "miou_weak": round_or_none(report["miou_weak"]),
        "coverage": round_or_none(covered / labelled) if labelled else None,
        "miou_labelled": round_or_none(report["miou"]),
        "iou": report["iou"],
    }
    if covered < labelled:
        only = [
            np.where(p == 255, 255, g).astype(np.uint8) for p, g in zip(preds, gts, strict=True)
        ]
        out["miou_labelled"] = round_or_none(
            evaluate(list(preds), only, num_classes + 1, strong, weak)["miou"]
        )
    return out


class Scorer:
    """Val predictions of a model state, scored against the full val masks."""

    def __init__(self, ds: Dataset, val: Sequence[int], untagged: bool) -> None:
        self.ds, self.val, self.untagged = ds, list(val), untagged
        self.images = [ds.images[i] for i in val]
        self.tags = [ds.tags[i] for i in val]
        self.gts = [ds.masks[i] for i in val]
        self.all_tags = [frozenset(range(1, ds.num_classes + 1))] * len(self.val)
        self.seconds = 0.0

    def _score(self, preds: Sequence[np.ndarray], setting: Setting) -> dict[str, Any]:
        return score(preds, self.gts, self.ds.num_classes, setting.strong, setting.weak)

    def segmenter(
        self, state: dict[str, Any], cfg: PipelineConfig, setting: Setting
    ) -> dict[str, Any]:
        """Val scores of S_a+S_b: with the val tags, and without (every category allowed)."""
        started = time.perf_counter()
        out = {
            "tagged": self._score(
                [p.mask for p in predict(state, self.images, self.tags, cfg)], setting
            )
        }
        if self.untagged:
            out["untagged"] = self._score(
                [p.mask for p in predict(state, self.images, self.all_tags, cfg)], setting
            )
        self.seconds += time.perf_counter() - started
        return out

    def transfer(
        self, state: dict[str, Any], cfg: PipelineConfig, setting: Setting
    ) -> dict[str, dict[str, Any]]:
        """Val scores of L-Net's CAM baseline and coarse masks (val tags given)."""
        started = time.perf_counter()
        cam, coarse = predict_transfer(state, self.images, self.tags, cfg)
        self.seconds += time.perf_counter() - started
        return {
            "cam": {"tagged": self._score(cam, setting)},
            "lnet": {"tagged": self._score(coarse, setting)},
        }
