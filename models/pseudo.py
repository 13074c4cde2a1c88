"""Pseudo-label generation: tag constraint, flip-averaged prediction, per-class thresholds."""

from __future__ import annotations

import torch
from torch import Tensor

from models.losses import IGNORE


def allowed_classes(tags: Tensor, has_background: bool) -> Tensor:
    """Classes a prediction may hold: T + {0}, or T alone when the data has no background.

    An image with nothing allowed (no tags, no background) allows every class, since
    nothing then constrains it.

    Shape:
        tags (N, K) multi-hot → (N, K+1) bool, column 0 = background.
    """
    background = torch.full_like(tags[:, :1], float(has_background))
    allowed = torch.cat([background, tags.float()], dim=1) > 0
    return allowed | ~allowed.any(dim=1, keepdim=True)


def constrain(logits: Tensor, allowed: Tensor) -> Tensor:
    """Set logits of classes outside ``allowed`` to -∞.

    Shape:
        logits (N, K+1, H, W), allowed (N, K+1) bool → (N, K+1, H, W)
    """
    return logits.masked_fill(~allowed[:, :, None, None], float("-inf"))


@torch.no_grad()
def flip_average(logits: Tensor, mirrored: Tensor, allowed: Tensor) -> Tensor:
    """Mean tag-constrained softmax of an image's logits and of its horizontal mirror's
    logits (flipped back here), float32.

    Shape:
        logits, mirrored (N, K+1, H, W), allowed (N, K+1) → (N, K+1, H, W)
    """
    return (
        torch.softmax(constrain(logits.float(), allowed), 1)
        + torch.softmax(constrain(mirrored.float().flip(-1), allowed), 1)
    ) / 2


def confident_labels(probs: Tensor, thresholds: Tensor, valid: Tensor | None = None) -> Tensor:
    """Argmax where its probability reaches the class threshold τ_k, else 255.

    Shape:
        probs (N, C, H, W), thresholds (C,), valid (N, H, W) bool → (N, H, W) long
    """
    confidence, labels = probs.max(dim=1)
    keep = confidence >= thresholds.to(probs.device)[labels]
    if valid is not None:
        keep &= valid
    return torch.where(keep, labels, IGNORE)


def class_thresholds(
    confidence: Tensor,
    labels: Tensor,
    num_labels: int,
    *,
    quantile: float,
    tau_min: float,
    tau_max: float,
) -> Tensor:
    """τ_k = ``quantile`` of the confidences of pixels labelled k, clipped to [τ_min, τ_max].

    A class with no pixel gets τ_min. Pixels labelled 255 are skipped.

    Shape:
        confidence (...), labels (...) same shape → (num_labels,) float32
    """
    confidence, labels = confidence.flatten().float(), labels.flatten().long()
    taus = torch.full((num_labels,), tau_min, dtype=torch.float32)
    for k in range(num_labels):
        values = confidence[labels == k]
        if values.numel():
            ordered = values.sort().values  # torch.quantile refuses more than 16M values
            position = round(quantile * (values.numel() - 1))
            taus[k] = ordered[position].clamp(tau_min, tau_max)
    return taus


def apply_thresholds(labels: Tensor, confidence: Tensor, thresholds: Tensor) -> Tensor:
    """Pixels whose confidence is under their class's τ become 255.

    Shape:
        labels (...) long/uint8 (255 kept), confidence (...), thresholds (C,) → like labels
    """
    labelled = labels != IGNORE
    tau = thresholds[labels.long().clamp(max=len(thresholds) - 1)]
    keep = labelled & (confidence >= tau)
    return torch.where(keep, labels, torch.full_like(labels, IGNORE))


# A weak category counts as taught to a teacher only where its labels name it on at least
# this share as many of the targets' pixels as the transferred labels give it: MSRC
# transfer's supervised nets named sheep, mountain and aeroplane on 0 % as many pixels as
# the CAM (their partial masks left them beside grass or water, and the candidates loss
# let the nets say those), every other weak category on 34-174 %; CamVid's named poles
# and signs on 60-100 times the CAM's few pixels of them, pedestrians on 1 %.
NAMED_SHARE = 0.1


def named_classes(coarse: Tensor, labels: Tensor, taught: list[int], weak: list[int]) -> list[int]:
    """``taught`` less the weak categories ``labels`` (a teacher's) name on fewer than
    NAMED_SHARE times as many pixels as ``coarse`` (the transferred labels) gives them; a
    category the transferred labels never give stays.

    Shape:
        coarse, labels (N, H, W) uint8
    """

    def unnamed(k: int) -> bool:
        given = int((coarse == k).sum())
        return given > 0 and int((labels == k).sum()) < NAMED_SHARE * given

    return [k for k in taught if k not in weak or not unnamed(k)]


def fuse_labels(coarse: Tensor, supervised: Tensor, learned: list[int]) -> Tensor:
    """P-Net's pseudo labels from L-Net's transferred masks and the supervised segmenters.

    The supervised segmenters win where they predict a class they were taught (``learned``:
    strong categories and background when present; with weak_source=teacher also the weak
    categories partial masks taught them), unless L-Net puts a category outside
    ``learned`` there: one the segmenters were never taught, so they cannot name it and
    would call its pixels a neighbour (MSRC transfer's sheep, never in a human mask, went
    to grass and ended at 0.00 val IoU). L-Net's label stands everywhere else. On
    MSRC-style semi-supervised data every category is strong and the supervised label map
    wins wholesale: it scores far above L-Net's class-agnostic decoder there.

    Shape:
        coarse (N, H, W) uint8 with 255, supervised (N, H, W) uint8 → (N, H, W) uint8
    """
    taught = torch.tensor(learned, dtype=torch.long)
    sup_ok = torch.isin(supervised.long(), taught)
    lnet_weak = (coarse != IGNORE) & ~torch.isin(coarse.long(), taught)
    return torch.where(sup_ok & ~lnet_weak, supervised, coarse)
