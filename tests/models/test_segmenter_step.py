"""The segmenters' training step: S_a and S_b share one run of their fixed trunk prefix
when it is identical, the discriminator sits out batches without tag-only images, and the
tag loss teaches only rows without a complete human mask."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from models.config import PipelineConfig
from models.networks import build_discriminator, build_segmenter
from models.precision import autocast, autocast_dtype
from models.steps import PNetAdversarialStep, same_frozen_prefix

K = 3
CFG = PipelineConfig(
    image_size=48, width=8, backbone="efficientnet_lite0", frozen_blocks=4, device="cpu"
)
CPU = torch.device("cpu")


def _step(seed: int = 0, cfg: PipelineConfig = CFG) -> PNetAdversarialStep:
    torch.manual_seed(seed)
    segmenters = {"s_a": build_segmenter(K, cfg, CPU), "s_b": build_segmenter(K, cfg, CPU)}
    disc = build_discriminator(K, cfg, CPU)
    return PNetAdversarialStep(segmenters, disc, cfg, CPU, has_background=True)


def _batch(masked: int, n: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    size = CFG.image_size
    mask = torch.randint(0, K + 1, (n, size, size), generator=g, dtype=torch.uint8)
    return {
        "image": torch.randn(n, 3, size, size, generator=g),
        "mask": torch.where(torch.arange(n)[:, None, None] < masked, mask, 255).to(torch.uint8),
        "pseudo": torch.where(torch.arange(n)[:, None, None] >= masked, mask, 255).to(torch.uint8),
        "weight": torch.ones(n, size, size),
        "tags": torch.ones(n, K),
        "valid": torch.ones(n, size, size, dtype=torch.bool),
        "has_mask": torch.arange(n) < masked,
    }


def test_shared_prefix_gives_the_same_logits_as_separate_runs() -> None:
    step = _step()
    assert step.share_prefix  # both trunks hold the ImageNet weights in their fixed part
    for s in step.segmenters.values():
        s.eval()
    x = _batch(2)["image"]
    shared = step._segment(x)
    separate = [s(x) for s in step.segmenters.values()]
    for a, b in zip(shared, separate, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_prefix_is_not_shared_when_the_fixed_parts_differ() -> None:
    a, b = build_segmenter(K, CFG, CPU), build_segmenter(K, CFG, CPU)
    assert same_frozen_prefix([a.encoder, b.encoder])
    with torch.no_grad():
        b.encoder._blocks[2]._project_conv.weight.mul_(1.5)  # inside the fixed blocks 0..4
    assert not same_frozen_prefix([a.encoder, b.encoder])
    assert not same_frozen_prefix([a.encoder])  # one net: nothing to share
    scratch = PipelineConfig(image_size=48, width=8, backbone="scratch", device="cpu")
    c, d = build_segmenter(K, scratch, CPU), build_segmenter(K, scratch, CPU)
    assert not same_frozen_prefix([c.encoder, d.encoder])


def test_discriminator_sits_out_batches_of_human_masks_only() -> None:
    step = _step()
    step.train()
    before = [p.detach().clone() for p in step.disc.parameters()]
    out = step(_batch(masked=4))  # the supervised stage's batches: every row has a mask
    assert "loss_d" not in out and "loss_adv" not in out
    assert all(torch.equal(a, b) for a, b in zip(before, step.disc.parameters(), strict=True))
    out = step(_batch(masked=2))  # P-Net's: human masks and pseudo-labelled images
    assert "loss_d" in out and "loss_adv" in out
    assert any(not torch.equal(a, b) for a, b in zip(before, step.disc.parameters(), strict=True))


def test_bfloat16_autocast_keeps_weights_and_losses_float32() -> None:
    """precision=bf16: the networks compute in bfloat16, the optimiser updates float32
    weights without a GradScaler, and the losses stay finite float32 numbers."""
    assert autocast_dtype(CPU, "auto") is None
    assert autocast_dtype(CPU, "bf16") is torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), "auto") is torch.float16
    assert autocast_dtype(torch.device("cuda"), "fp32") is None
    cfg = dataclasses.replace(CFG, precision="bf16")
    torch.manual_seed(0)
    segmenters = {"s_a": build_segmenter(K, cfg, CPU), "s_b": build_segmenter(K, cfg, CPU)}
    step = PNetAdversarialStep(
        segmenters, build_discriminator(K, cfg, CPU), cfg, CPU, has_background=True
    )
    assert not step.optim_s.scaler.is_enabled()
    step.train()
    with autocast(CPU, cfg.precision):
        assert all(logits.dtype == torch.bfloat16 for logits in step._segment(_batch(2)["image"]))
    before = [p.detach().clone() for p in step.segmenters["s_a"].parameters() if p.requires_grad]
    out = step(_batch(masked=2))
    assert all(np.isfinite(v) for v in out.values()), out
    after = [p for p in step.segmenters["s_a"].parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def _weights_after_one_step(
    lambda_tag: float, batch: dict[str, torch.Tensor]
) -> list[torch.Tensor]:
    step = _step(cfg=dataclasses.replace(CFG, lambda_tag=lambda_tag))
    step.train()
    step(batch)
    return [p.detach().clone() for p in step.segmenters["s_a"].parameters()]


def test_tag_loss_leaves_complete_human_masks_alone() -> None:
    """A human mask already places every tag: the tag loss (top-k pooled probabilities
    pulled to the tags) would only spread small objects there."""
    step = _step()
    step.train()
    assert "loss_tag" not in step(_batch(masked=4))
    assert "loss_tag" in step(_batch(masked=2))
    full = _batch(masked=4)
    same = zip(_weights_after_one_step(0.0, full), _weights_after_one_step(5.0, full), strict=True)
    assert all(torch.equal(a, b) for a, b in same)
    mixed = _batch(masked=2)
    moved = zip(
        _weights_after_one_step(0.0, mixed), _weights_after_one_step(5.0, mixed), strict=True
    )
    assert any(not torch.equal(a, b) for a, b in moved)


def test_tag_loss_teaches_partial_masks_with_candidates() -> None:
    batch = _batch(masked=4)
    batch["mask"][0, :10] = 255  # unpainted pixels that may hold class 1 or 2
    batch["candidates"] = torch.zeros(4, K + 1, dtype=torch.bool)
    batch["candidates"][0, [1, 2]] = True
    step = _step()
    step.train()
    out = step(batch)
    assert "loss_tag" in out and "loss_candidates" in out
