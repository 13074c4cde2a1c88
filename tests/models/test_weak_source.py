"""weak_source: who labels the categories annotators never paint for P-Net.

With `transfer` (the default) the transferred labels (the CAM's by default) name those
categories wherever they put one, so P-Net learns them no better than the CAM labels
them. With `teacher`, the supervised nets, which learned those categories from the
partial masks' unpainted pixels ("one of the tags left out", `partial_masks=candidates`),
label them like the painted ones.
"""

from __future__ import annotations

import dataclasses

import pytest

from models import PipelineConfig, run_pipeline
from tests.models.test_partial_masks import CFG, _transfer_data, weak_miou_on_unseen_images


def _weak_miou_on_unseen_images(weak_source: str) -> float:
    data, _ = _transfer_data()
    cfg = dataclasses.replace(
        CFG,
        partial_masks="candidates",
        weak_source=weak_source,
        rounds=0,
        epochs_supervised=8,
        epochs_pnet=8,
    )
    return weak_miou_on_unseen_images(run_pipeline(data, cfg).model_state, cfg)


def test_the_teacher_labels_left_out_categories_better_than_the_cams() -> None:
    """Half the categories painted on 60 % of the images: P-Net taught the unpainted
    categories by the supervised nets ends well above P-Net taught them by the CAMs, on
    images neither saw (0.770 against 0.651 here; 0.715 against 0.622 with seed 1)."""
    transfer = _weak_miou_on_unseen_images("transfer")
    teacher = _weak_miou_on_unseen_images("teacher")
    print(f"\nweak-category mIoU, unseen images: transfer {transfer:.3f}, teacher {teacher:.3f}")
    assert teacher >= 0.6
    assert teacher >= transfer + 0.05


def test_weak_source_is_a_knob_with_two_values() -> None:
    assert PipelineConfig().weak_source == "transfer"
    assert PipelineConfig.from_params({"weak_source": "teacher"}).weak_source == "teacher"
    with pytest.raises(ValueError, match="weak_source"):
        PipelineConfig.from_params({"weak_source": "cam"})
