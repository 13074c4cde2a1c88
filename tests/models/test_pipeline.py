"""run_pipeline end to end on tiny data: outputs, saved stages, resume, stop, progress."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
import torch

from models import LabelingData, PipelineConfig, StopRequested, predict, run_pipeline
from models.pipeline import PipelineResult
from tests.synthetic import make_shapes_dataset, split_strong_weak

CFG = PipelineConfig(
    backbone="scratch",
    image_size=32,
    epochs_lnet=2,
    epochs_supervised=1,
    epochs_pnet=1,
    epochs_round=1,
    rounds=2,
    width=4,
    batch_size=8,
    slic_segments=16,
    holdout_fraction=0.3,
    rollback_tolerance=1.0,
    device="cpu",
)


def _data(background: bool = True) -> LabelingData:
    images, masks, tags = make_shapes_dataset(16, 32, seed=5, vary_size=True, background=background)
    strong = [1, 2] if background else [1, 2, 3]
    masks = split_strong_weak(masks, tags, strong, mask_fraction=0.8, seed=0)
    return LabelingData(images, tags, masks, 4)


def _torch_roundtrip(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)  # what a worker reading blobs would do


class _Recorder:
    def __init__(self) -> None:
        self.saved: dict[str, dict[str, Any]] = {}
        self.progress: list[tuple[str, float]] = []

    def save(self, name: str, state: dict[str, Any]) -> None:
        self.saved[name] = _torch_roundtrip(state)

    def on_progress(self, stage: str, fraction: float, metrics: dict) -> None:
        assert isinstance(metrics, dict)
        self.progress.append((stage, fraction))


@pytest.fixture(scope="module")
def first_run() -> tuple[LabelingData, PipelineResult, _Recorder]:
    data, recorder = _data(), _Recorder()
    result = run_pipeline(data, CFG, on_progress=recorder.on_progress, save_stage=recorder.save)
    return data, result, recorder


def test_outputs_cover_every_unmasked_image(first_run) -> None:
    data, result, _ = first_run
    assert [label.index for label in result.labels] == data.unmasked
    for label in result.labels:
        shape = data.images[label.index].shape[:2]
        assert label.mask.shape == label.confidence.shape == shape
        assert label.mask.dtype == label.confidence.dtype == np.uint8
        assert set(np.unique(label.mask)) <= data.tags[label.index] | {0}
        assert label.regions and {"id", "bbox", "score"} <= set(label.regions[0])
    assert sorted(item.index for item in result.budget) == data.unmasked
    assert set(result.stage_masks) == {"cam", "lnet", "supervised", "pnet", "round_1", "round_2"}
    for masks in result.stage_masks.values():
        assert sorted(masks) == data.unmasked
    assert {"lnet", "s_a", "s_b", "disc", "num_classes", "has_background", "config"} <= set(
        result.model_state
    )
    assert set(result.weak_classes) >= {3, 4}
    assert sorted(result.strong_classes + result.weak_classes) == [1, 2, 3, 4]
    assert result.holdout and not set(result.holdout) & set(data.unmasked)
    for name in ("cam", "lnet", "pnet", "round_1"):
        assert 0.0 <= result.metrics[name]["miou"] <= 1.0
    assert 0.0 <= result.metrics["round_1"]["kept_fraction"] <= 1.0
    assert len(result.metrics["round_1"]["thresholds"]) == 5


def test_the_last_kept_round_labels_the_images(first_run) -> None:
    _, result, _ = first_run
    assert result.rounds_run == 2 and not result.rolled_back  # rollback_tolerance=1.0
    assert result.metrics["predict"]["nets_from"] == "round_2"


def test_progress_is_monotone_within_each_stage(first_run) -> None:
    _, _, recorder = first_run
    stages = list(dict.fromkeys(stage for stage, _ in recorder.progress))
    assert stages == ["lnet", "supervised", "pnet", "round_1", "round_2", "predict"]
    for stage in stages:
        fractions = [f for s, f in recorder.progress if s == stage]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0
        assert all(a <= b for a, b in itertools.pairwise(fractions))


def test_saved_stages_resume_without_training(first_run) -> None:
    data, result, recorder = first_run
    progress: list[tuple[str, float]] = []
    again = run_pipeline(
        data,
        CFG,
        load_stage=recorder.saved.get,
        on_progress=lambda s, f, m: progress.append((s, f)),
        should_stop=lambda: False,
    )
    assert again.resumed == ["lnet", "supervised", "pnet", "round_1", "round_2", "predict"]
    assert all(f == 1.0 for _, f in progress)  # nothing trained, nothing in between
    for a, b in zip(result.labels, again.labels, strict=True):
        assert np.array_equal(a.mask, b.mask) and np.array_equal(a.confidence, b.confidence)
    for name, masks in result.stage_masks.items():
        assert all(np.array_equal(masks[i], again.stage_masks[name][i]) for i in masks)


def test_resume_after_a_crash_retrains_the_rest_identically(first_run) -> None:
    data, result, recorder = first_run
    kept = {k: recorder.saved[k] for k in ("lnet", "supervised", "pnet")}
    again = run_pipeline(data, CFG, load_stage=kept.get)
    assert again.resumed == ["lnet", "supervised", "pnet"]
    for a, b in zip(result.labels, again.labels, strict=True):
        assert np.array_equal(a.mask, b.mask)


def test_should_stop_raises_stop_requested() -> None:
    calls: list[str] = []
    saved: dict[str, dict] = {}
    with pytest.raises(StopRequested):
        run_pipeline(
            _data(),
            CFG,
            on_progress=lambda s, f, m: calls.append(s),
            should_stop=lambda: "pnet" in calls,
            save_stage=lambda name, state: saved.setdefault(name, state),
        )
    assert list(saved) == ["lnet", "supervised"]


def test_without_background_class_zero_never_appears() -> None:
    data = _data(background=False)
    assert not data.has_background
    result = run_pipeline(data, CFG.__class__(**{**CFG.to_dict(), "rounds": 1}))
    assert not result.has_background
    for label in result.labels:
        assert 0 not in label.mask and set(np.unique(label.mask)) <= data.tags[label.index]
    for masks in result.stage_masks.values():
        assert all(0 not in m for m in masks.values())
    new_images, _, new_tags = make_shapes_dataset(3, 40, seed=11, background=False)
    for pred, tags in zip(predict(result.model_state, new_images, new_tags), new_tags, strict=True):
        assert pred.mask.shape == (40, 40) and set(np.unique(pred.mask)) <= tags


@pytest.mark.parametrize("case", ["tags_only", "all_masked"])
def test_degenerate_inputs_still_run(case: str) -> None:
    images, masks, tags = make_shapes_dataset(8, 32, seed=6)
    if case == "tags_only":  # no mask at all: coarse masks fall back to CAMs
        data = LabelingData(images, tags, [None] * 8, 4)
    else:  # nothing left to label
        data = LabelingData(images, tags, list(masks), 4)
    result = run_pipeline(data, CFG.__class__(**{**CFG.to_dict(), "rounds": 1}))
    assert [label.index for label in result.labels] == data.unmasked
    if case == "tags_only":
        assert result.holdout == [] and result.weak_classes == [1, 2, 3, 4]
        assert all(
            np.array_equal(result.stage_masks["cam"][i], result.stage_masks["lnet"][i])
            for i in data.unmasked
        )
    else:
        assert result.labels == [] and result.budget == []
        assert result.metrics["pnet"]["miou"] is not None


def test_all_masked_and_none_held_out_delivers_the_supervised_nets() -> None:
    """Nothing to label and nothing held out: P-Net and the rounds would only re-train on
    the same masks, so they are skipped and the supervised nets are the model."""
    images, masks, tags = make_shapes_dataset(8, 32, seed=6)
    data, recorder = LabelingData(images, tags, list(masks), 4), _Recorder()
    result = run_pipeline(data, CFG, save_stage=recorder.save, holdout=[])
    assert list(recorder.saved) == ["lnet", "supervised", "predict"]
    assert "pnet" not in result.metrics and result.rounds_run == 0
    assert result.metrics["predict"]["nets_from"] == "supervised"
    supervised = recorder.saved["supervised"]
    for name in ("s_a", "s_b", "disc"):
        for key, value in result.model_state[name].items():
            assert torch.equal(value, supervised[name][key]), (name, key)
    new_images, _, new_tags = make_shapes_dataset(2, 40, seed=12)
    for pred, t in zip(predict(result.model_state, new_images, new_tags), new_tags, strict=True):
        assert set(np.unique(pred.mask)) <= t | {0}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pipeline_on_cuda_with_autocast() -> None:
    data = _data()
    result = run_pipeline(data, CFG.__class__(**{**CFG.to_dict(), "device": "cuda"}))
    for label in result.labels:
        assert set(np.unique(label.mask)) <= data.tags[label.index] | {0}
    assert all(t.device.type == "cpu" for t in result.model_state["s_a"].values())


def test_fused_pnet_labels_train_on_every_pixel_the_filter_would_drop() -> None:
    """pnet_labels=fused keeps whole supervised label maps; filtered (the default) keeps
    the state's thresholded pseudo labels, which ignore some pixels."""
    import dataclasses

    saved: dict[str, dict] = {}
    cfg = dataclasses.replace(CFG, rounds=0)
    run_pipeline(_data(), cfg, save_stage=lambda n, s: saved.setdefault(n, s))
    assert "pseudo" in saved["supervised"]
    assert int((saved["supervised"]["pseudo"] == 255).sum()) > int(
        (saved["supervised"]["labels"] == 255).sum()
    )
    fused: dict[str, dict] = {}
    result = run_pipeline(
        _data(),
        dataclasses.replace(cfg, pnet_labels="fused"),
        save_stage=lambda n, s: fused.setdefault(n, s),
    )
    assert "pseudo" not in fused["supervised"] and result.labels


@pytest.mark.parametrize("weak_labels", ["lnet", "agree"])
def test_every_weak_label_source_runs_and_keeps_to_the_tags(weak_labels: str) -> None:
    import dataclasses

    data = _data()
    cfg = dataclasses.replace(CFG, rounds=0, weak_labels=weak_labels)
    result = run_pipeline(data, cfg)
    assert sorted(label.index for label in result.labels) == data.unmasked
    for label in result.labels:
        assert set(np.unique(label.mask)) <= data.tags[label.index] | {0}


def test_a_pnet_stage_that_lowers_heldout_miou_is_undone(first_run) -> None:
    """The saved stages again, but P-Net's held-out mIoU below the supervised stage's: with
    held-out masks that paint every tag, the rounds start from the supervised nets
    (rounds=0 here: those are the delivered nets); with partial held-out masks, which cannot
    score the tag-only categories P-Net adds, P-Net stays."""
    data, result, recorder = first_run
    saved = dict(recorder.saved)
    saved.pop("predict")
    supervised = saved["supervised"]["metrics"]["supervised"]["miou_gt"]
    pnet = saved["pnet"]
    saved["pnet"] = {
        **pnet,
        "metrics": {"pnet": {**pnet["metrics"]["pnet"], "miou_gt": supervised - 0.1}},
    }
    cfg = PipelineConfig(**{**CFG.to_dict(), "rounds": 0, "pnet_tolerance": 0.05})
    _, full_masks, _ = make_shapes_dataset(16, 32, seed=5, vary_size=True, background=True)
    held = set(result.holdout)
    complete = LabelingData(
        data.images,
        data.tags,
        [full_masks[i] if i in held else m for i, m in enumerate(data.masks)],
        4,
    )
    undone = run_pipeline(complete, cfg, load_stage=saved.get, holdout=result.holdout)
    assert undone.metrics["pnet"]["rolled_back"] is True
    assert undone.metrics["predict"]["nets_from"] == "supervised"
    for name in ("s_a", "s_b", "disc"):
        state = undone.model_state[name]
        assert all(torch.equal(v, saved["supervised"][name][k]) for k, v in state.items())
    partial = run_pipeline(data, cfg, load_stage=saved.get, holdout=result.holdout)
    assert any(data.masks[i] is not None and 255 in data.masks[i] for i in held)
    assert "rolled_back" not in partial.metrics["pnet"]
    # within the tolerance, P-Net stays
    saved["pnet"]["metrics"]["pnet"]["miou_gt"] = supervised - 0.01
    kept = run_pipeline(complete, cfg, load_stage=saved.get, holdout=result.holdout)
    assert "rolled_back" not in kept.metrics["pnet"]
    assert kept.metrics["predict"]["nets_from"] == "pnet"
    assert all(torch.equal(v, pnet["s_a"][k]) for k, v in kept.model_state["s_a"].items())


def test_tags_only_run_skips_the_rounds_it_cannot_check() -> None:
    """No human mask: nothing can say whether a round helps, so none runs (one measured
    unchecked on MSRC lost a quarter of P-Net's val mIoU); P-Net's nets are delivered."""
    images, _, tags = make_shapes_dataset(12, 32, seed=7)
    data, recorder = LabelingData(images, tags, [None] * len(images), 4), _Recorder()
    result = run_pipeline(data, CFG, save_stage=recorder.save)
    assert list(recorder.saved) == ["lnet", "pnet", "predict"]
    assert result.rounds_run == 0 and "round_1" not in result.metrics
    assert result.metrics["pnet"]["rounds_skipped"] == "no human masks to check a round"
    assert result.metrics["predict"]["nets_from"] == "pnet"
    assert len(result.labels) == len(images)
