"""Which stage's held-out IoU the annotation suggestions trust."""

from __future__ import annotations

from app.services.suggestions import final_quality

IOU = {
    "supervised": {"iou": {"1": 0.7, "2": 0.6}},
    "pnet": {"iou": {"1": 0.5}, "rolled_back": True},
    "round_1": {"iou": {"1": 0.4}, "rolled_back": True},
}


def test_the_stage_that_labelled_the_images_is_named_by_the_run() -> None:
    metrics = {**IOU, "predict": {"images": 3, "nets_from": "supervised"}}
    assert final_quality(metrics) == {"1": 0.7, "2": 0.6}


def test_runs_from_before_nets_from_fall_back_to_the_last_kept_round() -> None:
    kept = {**IOU, "round_1": {"iou": {"1": 0.8}}, "predict": {"images": 3}}
    assert final_quality(kept) == {"1": 0.8}
    assert final_quality({**IOU, "predict": {"images": 3}}) == {"1": 0.5}
    assert final_quality({}) == {}
