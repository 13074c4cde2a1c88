"""Losses: masked CE (ignore 255, per-pixel weights), Dice, tag losses, adversarial G/D losses.

Every loss computes in float32 (safe under autocast) and returns a scalar that still
carries a graph when nothing is valid (value 0), so callers need no special case.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

IGNORE = 255


def _masked_mean(values: Tensor, valid: Tensor | None) -> Tensor:
    if valid is None:
        return values.mean() if values.numel() else values.sum() * 0.0
    count = valid.sum()
    return (values * valid).sum() / count.clamp_min(1)


def masked_cross_entropy(
    logits: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = IGNORE
) -> Tensor:
    """Pixel CE averaged over labelled pixels, each scaled by its weight.

    The sum of weighted losses is divided by the number of labelled pixels (not by the sum
    of weights), so a region weight of 0.5 really halves that region's pull.

    Args:
        logits: (N, C, H, W) class scores.
        target: (N, H, W) class indices; ``ignore_index`` pixels do not count.
        weight: optional (N, H, W) non-negative per-pixel weights.
        ignore_index: label of unlabelled pixels (255).
    """
    valid = target != ignore_index
    safe = target.masked_fill(~valid, 0).long()
    ce = F.cross_entropy(logits.float(), safe, reduction="none")
    if weight is not None:
        ce = ce * weight.float()
    return _masked_mean(ce, valid)


def candidate_set_loss(logits: Tensor, candidates: Tensor, pixels: Tensor) -> Tensor:
    """Mean of -log P(class in the pixel's candidate set) over ``pixels``: a partial label
    (the pixel is one of these classes, not saying which), as for the unpainted pixels of a
    mask that leaves some tags out (models/partial_masks.py).

    Shape:
        logits (N, C, H, W), candidates (N, C) bool per image, pixels (N, H, W) bool → ()
    """
    rows = candidates.any(1) & pixels.flatten(1).any(1)
    if not bool(rows.any()):
        return logits.sum() * 0.0
    scores, pixels = logits[rows].float(), pixels[rows]
    inside = scores.masked_fill(~candidates[rows][:, :, None, None], float("-inf"))
    nll = torch.logsumexp(scores, 1) - torch.logsumexp(inside, 1)
    return nll[pixels].mean()


def dice_loss(
    logits: Tensor, target: Tensor, ignore_index: int = IGNORE, smooth: float = 1.0
) -> Tensor:
    """Soft Dice loss of the foreground channel, per sample, averaged over the batch.

    Args:
        logits: (N, 2, H, W) background/foreground scores.
        target: (N, H, W) with 1 = foreground, 0 = background, ``ignore_index`` ignored.
        smooth: added to numerator and denominator.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    valid = (target != ignore_index).float()
    fg = torch.softmax(logits.float(), dim=1)[:, 1] * valid
    truth = (target == 1).float()
    inter = (fg * truth).flatten(1).sum(1)
    total = fg.flatten(1).sum(1) + truth.flatten(1).sum(1)
    return (1 - (2 * inter + smooth) / (total + smooth)).mean()


def topk_pool(maps: Tensor, fraction: float) -> Tensor:
    """Mean of the top ``fraction`` of each map's values.

    Shape:
        maps (N, C, H, W) → (N, C)
    """
    flat = maps.float().flatten(2)
    k = max(1, math.ceil(fraction * flat.shape[-1]))
    return flat.topk(k, dim=-1).values.mean(-1)


def lse_pool(maps: Tensor, r: float = 5.0) -> Tensor:
    """Log-sum-exp pooling, (1/r)·log mean exp(r·x): between mean (r→0) and max (r→∞).

    Shape:
        maps (N, C, H, W) → (N, C)
    """
    flat = maps.float().flatten(2)
    return (torch.logsumexp(r * flat, dim=-1) - math.log(flat.shape[-1])) / r


def tag_loss(pooled_logits: Tensor, tags: Tensor) -> Tensor:
    """Multi-label BCE of pooled class scores against the image tags.

    Args:
        pooled_logits: (N, K) pooled CAM logits.
        tags: (N, K) multi-hot tags, 1 where the category is tagged.
    """
    return F.binary_cross_entropy_with_logits(pooled_logits.float(), tags.float())


def cam_mask_loss(cams: Tensor, mask: Tensor, num_classes: int) -> Tensor:
    """BCE of every CAM against the human mask's share of its class in each CAM cell.

    Tags alone cannot teach where a category is when it is on (nearly) every image: its
    tag is always 1 and the pooled loss is met by any activation. A painted mask says for
    each painted pixel which category it is and which it is not, so cells get a target
    (the class's share of the cell's painted pixels) weighted by how much of the cell is
    painted; unpainted pixels (255) say nothing. A category no mask paints still learns
    where it is not (the painted pixels), which moves its pooled activation to the
    unpainted ones.

    Args:
        cams: (M, K, h, w) CAM logits of masked images.
        mask: (M, H, W) long human masks, 255 = unpainted.
        num_classes: K.
    """
    if len(mask) == 0:
        return cams.new_zeros((), dtype=torch.float32)
    painted = mask != IGNORE
    labels = torch.where(painted, mask, 0)
    onehot = F.one_hot(labels, num_classes + 1)[..., 1:].permute(0, 3, 1, 2).float()
    onehot = onehot * painted[:, None]
    size = cams.shape[-2:]
    share = F.adaptive_avg_pool2d(onehot, size)
    cover = F.adaptive_avg_pool2d(painted[:, None].float(), size)
    target = share / cover.clamp_min(1e-6)
    weight = cover.expand_as(target)
    total = F.binary_cross_entropy_with_logits(cams.float(), target, weight, reduction="sum")
    return total / weight.sum().clamp_min(1.0)


def segmentation_tag_loss(logits: Tensor, tags: Tensor, fraction: float) -> Tensor:
    """BCE between each category's top-k pooled softmax probability and the tags.

    Args:
        logits: (N, K+1, H, W) segmenter scores, channel 0 = background.
        tags: (N, K) multi-hot tags.
        fraction: share of pixels pooled per category.
    """
    probs = torch.softmax(logits.float(), dim=1)[:, 1:]
    pooled = topk_pool(probs, fraction).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(pooled, tags.float())


def discriminator_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    real_valid: Tensor | None = None,
    fake_valid: Tensor | None = None,
) -> Tensor:
    """Dsc loss: BCE(real → 1) + BCE(fake → 0), each averaged over its valid pixels.

    Args:
        real_logits: (N_r, 1, H, W) Dsc output on one-hot human masks.
        fake_logits: (N_f, 1, H, W) Dsc output on the segmenter's (detached) softmax.
        real_valid, fake_valid: optional (N, H, W) booleans; False pixels (unlabelled in
            the human mask, padding) do not count.
    """
    real = F.binary_cross_entropy_with_logits(
        real_logits.float()[:, 0],
        torch.ones_like(real_logits[:, 0], dtype=torch.float32),
        reduction="none",
    )
    fake = F.binary_cross_entropy_with_logits(
        fake_logits.float()[:, 0],
        torch.zeros_like(fake_logits[:, 0], dtype=torch.float32),
        reduction="none",
    )
    return _masked_mean(real, real_valid) + _masked_mean(fake, fake_valid)


def generator_adversarial_loss(fake_logits: Tensor, valid: Tensor | None = None) -> Tensor:
    """Segmenter's adversarial loss: BCE(Dsc(S(x)) → real).

    Args:
        fake_logits: (N, 1, H, W) Dsc output on the segmenter's softmax (not detached).
        valid: optional (N, H, W) booleans of pixels that count.
    """
    loss = F.binary_cross_entropy_with_logits(
        fake_logits.float()[:, 0],
        torch.ones_like(fake_logits[:, 0], dtype=torch.float32),
        reduction="none",
    )
    return _masked_mean(loss, valid)
