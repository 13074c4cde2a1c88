"""Fully convolutional discriminator: class probabilities + image → per-pixel "human mask" logit."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.lnet import upsample


class Discriminator(nn.Module):
    """Dsc (Hung et al. 2018 style, with the image as extra input channels).

    Args:
        num_classes: K; the probability input has K+1 channels.
        width: channels of the first layer (doubled twice).
        image_channels: channels of the normalised image.

    Shape:
        probs (N, K+1, H, W), image (N, 3, H, W) → logits (N, 1, H, W); > 0 means "real".
    """

    def __init__(self, num_classes: int, width: int = 16, image_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = num_classes + 1 + image_channels
        for i in range(3):
            channels = width * 2**i
            layers += [
                nn.Conv2d(previous, channels, 3, stride=2, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            previous = channels
        layers.append(nn.Conv2d(previous, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, probs: Tensor, image: Tensor) -> Tensor:
        logits = self.net(torch.cat([probs, image.to(probs.dtype)], dim=1))
        return upsample(logits, image.shape[-2:])
