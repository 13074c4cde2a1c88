"""Losses against hand-computed values: ignore 255, per-pixel weights, tag and GAN losses."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.losses import (
    cam_mask_loss,
    dice_loss,
    discriminator_loss,
    generator_adversarial_loss,
    lse_pool,
    masked_cross_entropy,
    segmentation_tag_loss,
    tag_loss,
    topk_pool,
)


def _logits() -> torch.Tensor:
    # (1, 3, 1, 3): three pixels, three classes
    return torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 3.0, 1.0]], [[0.0, 0.0, 5.0]]]])


def test_cross_entropy_ignores_255() -> None:
    logits = _logits()
    target = torch.tensor([[[0, 1, 255]]])
    log_p = torch.log_softmax(logits, dim=1)
    expected = -(log_p[0, 0, 0, 0] + log_p[0, 1, 0, 1]) / 2
    assert masked_cross_entropy(logits, target).item() == pytest.approx(expected.item())
    changed = logits.clone()
    changed[0, :, 0, 2] = torch.tensor([9.0, -9.0, 0.0])  # the ignored pixel
    assert masked_cross_entropy(changed, target).item() == pytest.approx(expected.item())


def test_cross_entropy_weights_scale_each_pixel() -> None:
    logits = _logits()
    target = torch.tensor([[[0, 1, 2]]])
    log_p = torch.log_softmax(logits, dim=1)
    weight = torch.tensor([[[1.0, 0.0, 0.5]]])
    expected = -(log_p[0, 0, 0, 0] + 0.5 * log_p[0, 2, 0, 2]) / 3  # divided by labelled count
    assert masked_cross_entropy(logits, target, weight).item() == pytest.approx(expected.item())


def test_cross_entropy_with_nothing_labelled_is_zero_and_differentiable() -> None:
    logits = _logits().requires_grad_()
    loss = masked_cross_entropy(logits, torch.full((1, 1, 3), 255))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
    empty = masked_cross_entropy(torch.zeros(0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long))
    assert empty.item() == 0.0


def test_dice_perfect_opposite_and_ignored() -> None:
    target = torch.tensor([[[1, 1, 0, 255]]])
    sure = torch.tensor([[[[-20.0, -20.0, 20.0, 20.0]], [[20.0, 20.0, -20.0, -20.0]]]])
    assert dice_loss(sure, target, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    # the ignored last pixel predicts background here and must not matter
    assert dice_loss(sure.flip(1), target, smooth=0.0).item() == pytest.approx(1.0, abs=1e-6)
    half = torch.zeros(1, 2, 1, 4)  # p_fg = 0.5 on the three labelled pixels
    assert dice_loss(half, target, smooth=0.0).item() == pytest.approx(1 - 2 * 1.0 / (1.5 + 2))


def test_pooling_by_hand() -> None:
    maps = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    assert topk_pool(maps, 0.5).item() == pytest.approx(3.5)
    assert topk_pool(maps, 0.01).item() == pytest.approx(4.0)
    lse = lse_pool(maps, r=1.0).item()
    assert lse == pytest.approx(math.log(sum(math.exp(v) for v in (1, 2, 3, 4)) / 4))
    assert 2.5 < lse < 4.0


def test_tag_loss_is_bce_of_pooled_logits() -> None:
    pooled = torch.tensor([[2.0, -1.0]])
    tags = torch.tensor([[1.0, 0.0]])
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert tag_loss(pooled, tags).item() == pytest.approx(expected)


def test_segmentation_tag_loss_rewards_tagged_classes() -> None:
    tags = torch.tensor([[1.0, 0.0]])  # class 1 tagged, class 2 not
    right = torch.zeros(1, 3, 4, 4)
    right[:, 0] = 10.0  # background everywhere ...
    right[:, 0, :2], right[:, 1, :2] = 0.0, 10.0  # ... but class 1 in the top half
    wrong = right[:, [0, 2, 1]]  # class 2 instead of class 1
    assert segmentation_tag_loss(right, tags, 0.25) < 0.01
    assert segmentation_tag_loss(wrong, tags, 0.25) > 5.0


def test_adversarial_losses() -> None:
    confident_real = torch.full((1, 1, 2, 2), 10.0)
    confident_fake = torch.full((1, 1, 2, 2), -10.0)
    assert discriminator_loss(confident_real, confident_fake).item() < 1e-3
    assert discriminator_loss(confident_fake, confident_real).item() > 19.0
    assert generator_adversarial_loss(confident_real).item() < 1e-3
    zero = torch.zeros(1, 1, 2, 2)
    assert generator_adversarial_loss(zero).item() == pytest.approx(math.log(2))
    # pixels outside `valid` do not count
    mixed = torch.tensor([[[[10.0, -10.0], [10.0, -10.0]]]])
    valid = torch.tensor([[[True, False], [True, False]]])
    assert generator_adversarial_loss(mixed, valid).item() < 1e-3
    expected = F.binary_cross_entropy_with_logits(torch.tensor(-10.0), torch.tensor(1.0))
    assert generator_adversarial_loss(mixed, ~valid).item() == pytest.approx(expected.item())


def test_cam_mask_loss_targets_are_painted_class_shares() -> None:
    # One 4x4 mask, CAMs at 2x2: top-left cell all class 1, top-right half class 2 and half
    # unpainted, bottom row background.
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :2, :2] = 1
    mask[0, :2, 2] = 2
    mask[0, :2, 3] = 255
    right = torch.tensor([[[[9.0, -9.0], [-9.0, -9.0]], [[-9.0, 9.0], [-9.0, -9.0]]]])
    wrong = -right
    assert cam_mask_loss(right, mask, 2).item() < 0.01
    assert cam_mask_loss(wrong, mask, 2).item() > 4.0
    # the unpainted half of the top-right cell says nothing: only its painted half counts
    only_painted = mask.clone()
    only_painted[0, :2, 3] = 2
    assert cam_mask_loss(right, only_painted, 2).item() < 0.01
    zero = torch.zeros(1, 2, 2, 2)
    # cells weighted by painted share: 3.5 painted cells of 4, logits 0 → log 2 per entry
    assert cam_mask_loss(zero, mask, 2).item() == pytest.approx(math.log(2), rel=1e-5)
    assert cam_mask_loss(torch.zeros(0, 2, 2, 2), mask[:0], 2).item() == 0.0
