"""P-Net: multi-class segmenter (encoder + ASPP-like context module + light skip decoder)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.backbone import Encoder, conv_bn_relu
from models.efficientnet import EfficientNetLite0
from models.lnet import upsample


class ContextModule(nn.Module):
    """ASPP-like context: parallel dilated 3x3 convs, a 1x1 conv and image pooling.

    Args:
        in_channels: input channels.
        channels: channels of each branch and of the output.
        dilations: dilation of each 3x3 branch.

    Shape:
        (N, in_channels, h, w) → (N, channels, h, w)
    """

    def __init__(
        self, in_channels: int, channels: int, dilations: tuple[int, ...] = (2, 4)
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, channels, kernel_size=1)]
            + [conv_bn_relu(in_channels, channels, dilation=d) for d in dilations]
        )
        # No BatchNorm after pooling: a 1x1 map with batch 1 has no statistics.
        self.pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True)
        )
        self.project = conv_bn_relu(channels * (len(dilations) + 2), channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class PNet(nn.Module):
    """Segmenter S: K+1 logits (background + K categories) at input size.

    The context module reads the deepest features; the decoder goes back up through
    ``middle`` intermediate scales (top-down, FPN-like: upsample, concatenate a 1x1
    projection of the scale's features, 3x3 conv) and ends at the shallowest scale.

    Args:
        num_classes: K, categories without background; the output has K+1 channels.
        width: encoder width (of the from-scratch encoder; ignored when ``encoder`` is given).
        depth: encoder stages (likewise).
        channels: context/decoder width (default ``2 * width``).
        encoder: a multi-scale encoder with ``out_channels``; default a from-scratch
            :class:`Encoder`.
        middle: intermediate scales the decoder fuses (0: the shallowest one only, as the
            from-scratch segmenter does; a pretrained trunk uses all of them).

    Shape:
        (N, 3, H, W) → (N, K+1, H, W)
    """

    def __init__(
        self,
        num_classes: int,
        width: int = 16,
        depth: int = 3,
        channels: int | None = None,
        *,
        encoder: nn.Module | None = None,
        middle: int = 0,
    ) -> None:
        super().__init__()
        channels = channels or 2 * width
        self.num_classes = num_classes
        self.encoder = encoder if encoder is not None else Encoder(width, depth)
        out = self.encoder.out_channels
        if not 0 <= middle <= len(out) - 2:
            raise ValueError(f"middle must be in [0, {len(out) - 2}]")
        self.context = ContextModule(out[-1], channels)
        levels = list(range(len(out) - 2, len(out) - 2 - middle, -1))  # deep → shallow
        self.levels = levels
        self.lateral = nn.ModuleList(
            conv_bn_relu(out[i], channels // 2, kernel_size=1) for i in levels
        )
        self.fuse = nn.ModuleList(conv_bn_relu(channels + channels // 2, channels) for _ in levels)
        skip = max(8, channels // 2)
        self.skip = conv_bn_relu(out[0], skip, kernel_size=1)
        self.decoder = nn.Sequential(
            conv_bn_relu(channels + skip, channels), conv_bn_relu(channels, channels)
        )
        self.classifier = nn.Conv2d(channels, num_classes + 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        return self.decode(self.encoder(images), images.shape[-2:])

    def decode(self, features: list[Tensor], size: Sequence[int]) -> Tensor:
        """Logits at ``size`` from the encoder's multi-scale ``features``."""
        x = self.context(features[-1])
        for level, lateral, fuse in zip(self.levels, self.lateral, self.fuse, strict=True):
            f = features[level]
            x = fuse(torch.cat([upsample(x, f.shape[-2:]), lateral(f)], dim=1))
        early = features[0]
        x = self.decoder(torch.cat([upsample(x, early.shape[-2:]), self.skip(early)], dim=1))
        return upsample(self.classifier(x), size)


def same_frozen_prefix(encoders: Sequence[nn.Module]) -> bool:
    """Whether two or more pretrained trunks hold identical fixed stems and blocks (S_a and
    S_b started from one trunk): then one run of that prefix serves all of them. The fixed
    part never changes in training (no gradients, BatchNorm statistics as loaded)."""
    if len(encoders) < 2 or not all(
        isinstance(e, EfficientNetLite0) and e.frozen_modules for e in encoders
    ):
        return False
    first, *others = encoders
    reference = [t for m in first.frozen_modules for t in m.state_dict().values()]  # type: ignore[union-attr]
    for other in others:
        tensors = [t for m in other.frozen_modules for t in m.state_dict().values()]  # type: ignore[union-attr]
        if len(tensors) != len(reference) or not all(
            torch.equal(a, b) for a, b in zip(reference, tensors, strict=True)
        ):
            return False
    return True


def run_segmenters(segmenters: Sequence[PNet], x: Tensor, share_prefix: bool) -> list[Tensor]:
    """Every segmenter's logits for ``x``; with ``share_prefix`` (see
    :func:`same_frozen_prefix`) the fixed trunk prefix runs once for all of them."""
    if not share_prefix:
        return [s(x) for s in segmenters]
    y, taps = segmenters[0].encoder.frozen_prefix(x)
    return [s.decode(s.encoder.resume(y, taps), x.shape[-2:]) for s in segmenters]
