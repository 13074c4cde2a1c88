"""Learning happens: measured on held-out synthetic images the networks never trained on.

Transfer setup: categories 1, 2 are strong (some images carry masks of them), 3, 4 are weak
(tags only; their pixels are unpainted even in masked images). Scored against the full
ground truth of a fresh test set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest

from models import LabelingData, PipelineConfig, run_pipeline
from models.inference import predict, predict_transfer
from models.metrics import accumulate, class_iou, mean_iou
from models.pipeline import PipelineResult
from tests.synthetic import make_shapes_dataset, split_strong_weak

STRONG, WEAK = [1, 2], [3, 4]
CFG = PipelineConfig(
    backbone="scratch",  # seconds per stage; tests/models/test_pretrained.py trains Lite0
    image_size=48,
    width=16,
    batch_size=8,
    epochs_lnet=20,
    epochs_supervised=5,
    epochs_pnet=10,
    epochs_round=5,
    rounds=1,
    slic_segments=24,
    # These shapes are where L-Net's transfer shines (weak mIoU 0.51 vs CAM 0.42); on MSRC
    # photographs the CAM labels win (bench/quality.py), hence the service default "cam".
    weak_labels="lnet",
    device="cpu",
    seed=0,
)


@dataclass
class Scores:
    weak: float
    strong: float
    all: float


@dataclass
class Outcome:
    data: LabelingData
    result: PipelineResult
    test_tags: list[frozenset[int]]
    cam: Scores
    lnet: Scores
    final: Scores
    test_masks: dict[str, list[np.ndarray]]


def _scores(preds: list[np.ndarray], gts: list[np.ndarray]) -> Scores:
    iou = class_iou(accumulate(preds, gts, 5))
    return Scores(weak=mean_iou(iou, WEAK), strong=mean_iou(iou, STRONG), all=mean_iou(iou))


def run_transfer_experiment(cfg: PipelineConfig) -> Outcome:
    """Train on 80 synthetic images, score CAM / L-Net / P-Net+round on 40 unseen ones."""
    images, gts, tags = make_shapes_dataset(80, 48, seed=1)
    data = LabelingData(
        images, tags, split_strong_weak(gts, tags, STRONG, mask_fraction=0.6), num_classes=4
    )
    result = run_pipeline(data, cfg)
    test_images, test_gts, test_tags = make_shapes_dataset(40, 48, seed=99)
    cam, coarse = predict_transfer(result.model_state, test_images, test_tags)
    final = [p.mask for p in predict(result.model_state, test_images, test_tags)]
    outcome = Outcome(
        data,
        result,
        test_tags,
        _scores(cam, test_gts),
        _scores(coarse, test_gts),
        _scores(final, test_gts),
        {"cam": cam, "lnet": coarse, "final": final},
    )
    return outcome


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    outcome = run_transfer_experiment(CFG)
    print(
        f"\nunseen test images, mIoU weak/strong/all: CAM {outcome.cam}, L-Net {outcome.lnet}, "
        f"P-Net+round {outcome.final}; rolled back: {outcome.result.rolled_back}"
    )
    return outcome


def test_strong_and_weak_split_as_set_up(outcome: Outcome) -> None:
    assert outcome.result.strong_classes == STRONG
    assert outcome.result.weak_classes == WEAK


@pytest.fixture(scope="module")
def tags_only_cams() -> Outcome:
    """The same run with CAMs taught by tags alone (``lambda_cam_mask=0``), the papers'
    baseline that L-Net's transfer is measured against."""
    outcome = run_transfer_experiment(dataclasses.replace(CFG, lambda_cam_mask=0.0))
    print(f"\ntags-only CAMs, mIoU weak/strong/all: CAM {outcome.cam}, L-Net {outcome.lnet}")
    return outcome


def test_lnet_transfers_to_weak_categories_better_than_cams(tags_only_cams: Outcome) -> None:
    # The claim is the margin over tag-taught CAMs on unseen images; the floor only says it
    # is no accident. Measured in this module's order: CAM 0.48, L-Net 0.51 (run alone in
    # a fresh process: 0.43 and 0.52; run-to-run spread on these 40 images is ~0.05).
    assert tags_only_cams.lnet.weak >= 0.45
    assert tags_only_cams.lnet.weak >= tags_only_cams.cam.weak + 0.02


def test_mask_taught_cams_localise_the_weak_categories_better(
    outcome: Outcome, tags_only_cams: Outcome
) -> None:
    """CAMs that also learn from the strong categories' masks localise those far better and
    cost the unpainted categories nothing. Measured on two CPU kinds from the same seeds:
    strong 0.52 → 0.69 and 0.49 → 0.70; weak 0.48 → 0.52 on one, 0.452 → 0.454 on the other,
    so the gain on the weak categories is within the floating-point spread between machines
    and only "no worse" is claimed for them."""
    assert outcome.cam.strong >= tags_only_cams.cam.strong + 0.1
    assert outcome.cam.weak >= tags_only_cams.cam.weak - 0.03


def test_pnet_and_a_round_are_not_worse_than_lnet(outcome: Outcome) -> None:
    assert outcome.final.all >= outcome.lnet.all - 0.02
    assert outcome.final.weak >= outcome.lnet.weak - 0.05
    assert outcome.final.weak >= outcome.cam.weak + 0.2
    assert outcome.final.strong >= 0.75


def test_held_out_masks_measure_the_segmenters(outcome: Outcome) -> None:
    metrics = outcome.result.metrics
    assert metrics["supervised"]["miou_strong"] >= 0.6
    assert metrics["pnet"]["miou_strong"] >= 0.6
    assert metrics["round_1"]["miou"] is not None and metrics["round_1"]["kept_fraction"] > 0.3


def test_no_prediction_leaves_the_image_tags(outcome: Outcome) -> None:
    data, result = outcome.data, outcome.result
    for label in result.labels:
        assert set(np.unique(label.mask)) <= data.tags[label.index] | {0}
    for masks in result.stage_masks.values():
        for index, mask in masks.items():
            assert set(np.unique(mask)) <= data.tags[index] | {0, 255}
    for masks in outcome.test_masks.values():
        for mask, tags in zip(masks, outcome.test_tags, strict=True):
            assert set(np.unique(mask)) <= tags | {0, 255}
