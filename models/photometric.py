"""Colour jitter, greyscale and blur of pseudo-labelled rows: the student's noisy view.

Self-training pays when the student learns its teacher's labels from a harder view of
the photo than the teacher saw (Noisy Student, Xie et al. 2020; ST++ and UniMatch use
this same set of strong photometric perturbations for segmentation). CutMix changes the
context around objects; these change their look. Labels need not move: the pixels stay
where they are.

Human-masked rows stay clean, as in :mod:`models.mixing`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from models.transforms import MEAN, STD

# Ranges as ST++/UniMatch draw them: jitter factors in [1 - J, 1 + J], greyscale and blur
# with these probabilities, blur sigma uniform in BLUR_SIGMA pixels at a BLUR_SIDE-pixel
# side and in proportion at others: a fixed 2-pixel blur wipes out a 32-pixel image (the
# synthetic probe's segmenters fell 0.756 -> 0.678 held-out mIoU with it, 0.765 without).
JITTER = 0.5
GREY_PROB = 0.2
BLUR_PROB = 0.5
BLUR_SIGMA = (0.1, 2.0)
BLUR_SIDE = 320
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def jitter_pseudo(
    batch: dict[str, Tensor], generator: torch.Generator, prob: float
) -> dict[str, Tensor]:
    """Each row without a human mask is perturbed with probability ``prob``: brightness,
    contrast and saturation factors, then greyscale and Gaussian blur by chance.

    The image is ImageNet-normalised (models.transforms); it is taken back to 0-255,
    perturbed, clipped and normalised again, and padding (``valid`` False) goes back to 0
    (the mean colour), so the nets see no new border.
    """
    unmasked = torch.nonzero(~batch["has_mask"]).flatten()
    if len(unmasked) == 0 or prob <= 0:
        return batch
    image = batch["image"]
    mean, std = MEAN.to(image)[:, None, None], STD.to(image)[:, None, None]
    out = dict(batch)
    out["image"] = image.clone()
    for row in unmasked.tolist():
        draws = torch.rand(7, generator=generator).tolist()
        if draws[0] >= prob:
            continue
        x = image[row] * std + mean
        inside = (
            batch["valid"][row] if "valid" in batch else torch.ones_like(x[0], dtype=torch.bool)
        )
        brightness, contrast, saturation = (1 - JITTER + 2 * JITTER * d for d in draws[1:4])
        x = x * brightness
        level = _grey(x)[0][inside].mean()  # the photo's mean grey, padding left out
        x = (x - level) * contrast + level
        grey = _grey(x)
        x = (x - grey) * saturation + grey
        if draws[4] < GREY_PROB:
            x = _grey(x).expand(3, -1, -1)
        if draws[5] < BLUR_PROB:
            lo, hi = (s * max(x.shape[-2:]) / BLUR_SIDE for s in BLUR_SIGMA)
            x = gaussian_blur(x, lo + (hi - lo) * draws[6])
        out["image"][row] = (x.clamp(0, 255) - mean) / std * inside
    return out


def _grey(x: Tensor) -> Tensor:
    """(3, H, W) RGB → (1, H, W) luma."""
    return (_LUMA.to(x)[:, None, None] * x).sum(0, keepdim=True)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """(C, H, W) blurred per channel by a separable Gaussian (reflect padding)."""
    radius = max(1, min(round(3 * sigma), (min(x.shape[-2:]) - 1) // 2))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[0]
    y = x[None]
    y = F.conv2d(
        F.pad(y, (radius, radius, 0, 0), mode="reflect"),
        kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1),
        groups=channels,
    )
    y = F.conv2d(
        F.pad(y, (0, 0, radius, radius), mode="reflect"),
        kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1),
        groups=channels,
    )
    return y[0]
