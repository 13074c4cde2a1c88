"""L-Net: shared encoder, multi-label CAM head, and a class-agnostic attention decoder.

The decoder only ever sees *which region* (a_k), never *which class*, so what it learns on
strong categories transfers to weak ones (TransferNet, Hong et al. 2016; Xiao et al. 2018).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.backbone import Encoder, conv_bn_relu


def upsample(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize of a (N, C, h, w) map to ``size``."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class AttentionDecoder(nn.Module):
    """Decode "the object under the attention" into background/foreground logits.

    The deepest features enter only multiplied by the attention (plus the attention itself):
    given the raw deep features too, the decoder learns class-specific shortcuts and
    transfers worse (measured: weak-class mIoU 0.45 vs 0.57 on synthetic shapes). Each
    shallower skip, for boundaries, is fused with the attention resized to its scale.

    Args:
        in_channels: encoder channels per scale, shallow to deep.
        channels: decoder channels.

    Shape:
        features: list like the encoder's, batch P (one entry per image-class pair).
        attention: (P, 1, h, w) at the deepest scale or a finer one, values in [0, 1].
        output: (P, 2, H, W) with (H, W) = ``out_size``.
    """

    def __init__(self, in_channels: Sequence[int], channels: int) -> None:
        super().__init__()
        deep = in_channels[-1]
        self.head = conv_bn_relu(deep + 1, channels)
        self.fuse = nn.ModuleList(
            conv_bn_relu(channels + c + 1, channels) for c in reversed(in_channels[:-1])
        )
        self.classifier = nn.Conv2d(channels, 2, 1)

    def forward(
        self, features: Sequence[Tensor], attention: Tensor, out_size: Sequence[int]
    ) -> Tensor:
        deep = features[-1]
        coarse = attention
        if attention.shape[-2:] != deep.shape[-2:]:  # CAMs from a finer scale than the deepest
            coarse = F.adaptive_avg_pool2d(attention, deep.shape[-2:])
        x = self.head(torch.cat([deep * coarse, coarse], dim=1))
        for skip, fuse in zip(reversed(features[:-1]), self.fuse, strict=True):
            size = skip.shape[-2:]
            x = fuse(torch.cat([upsample(x, size), skip, upsample(attention, size)], dim=1))
        return upsample(self.classifier(x), out_size)


class LNet(nn.Module):
    """Encoder + 1x1 CAM head (K maps) + class-agnostic attention decoder.

    Class indices in this API are 1..K (0 is background); CAM channel k-1 is class k.

    Args:
        num_classes: K, the number of categories (background excluded).
        width: encoder width (of the from-scratch encoder; ignored when ``encoder`` is given).
        depth: encoder stages (likewise).
        decoder_channels: decoder width (default ``2 * width``).
        encoder: a multi-scale encoder with ``out_channels`` (e.g. a pretrained trunk);
            default a from-scratch :class:`Encoder`.
        cam_scales: 1: CAMs from the deepest features; 2: from the deepest and the next
            scale together (see :meth:`cams`).

    Shape:
        forward / cams: (N, 3, H, W) → CAMs (N, K, H / r, W / r), r the deepest reduction.
    """

    def __init__(
        self,
        num_classes: int,
        width: int = 16,
        depth: int = 3,
        decoder_channels: int | None = None,
        *,
        encoder: nn.Module | None = None,
        cam_scales: int = 1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder = encoder if encoder is not None else Encoder(width, depth)
        out = self.encoder.out_channels
        if not 1 <= cam_scales <= 2:
            raise ValueError("cam_scales must be 1 or 2")
        self.cam_scales = cam_scales
        cam_in = out[-1] + (out[-2] if cam_scales == 2 else 0)
        self.cam_head = nn.Conv2d(cam_in, num_classes, 1)
        self.decoder = AttentionDecoder(self.encoder.out_channels, decoder_channels or 2 * width)

    def features(self, images: Tensor) -> list[Tensor]:
        return self.encoder(images)

    def cams(self, features: Sequence[Tensor]) -> Tensor:
        """Class activation maps from the deepest features; with ``cam_scales`` 2, from the
        deepest upsampled to the next scale and concatenated with it (twice the resolution:
        small objects get more than one cell of a stride-32 map)."""
        if self.cam_scales == 1:
            return self.cam_head(features[-1])
        finer = features[-2]
        deep = upsample(features[-1], finer.shape[-2:])
        return self.cam_head(torch.cat([deep, finer.to(deep.dtype)], dim=1))

    def forward(self, images: Tensor) -> Tensor:
        return self.cams(self.features(images))

    @staticmethod
    def attention(cams: Tensor, image_index: Tensor, class_index: Tensor) -> Tensor:
        """a_k = ReLU(CAM_k) / max ReLU(CAM_k) for each (image, class 1..K) pair.

        Shape:
            cams (N, K, h, w); image_index, class_index (P,) → (P, 1, h, w) in [0, 1].
        """
        maps = torch.relu(cams[image_index, class_index - 1]).float()
        peak = maps.flatten(1).amax(dim=1).clamp_min(1e-6)
        return (maps / peak[:, None, None]).unsqueeze(1)

    def decode(
        self,
        features: Sequence[Tensor],
        image_index: Tensor,
        attention: Tensor,
        out_size: Sequence[int],
    ) -> Tensor:
        """Background/foreground logits (P, 2, H, W) for each attended pair."""
        picked = [f[image_index] for f in features]
        return self.decoder(picked, attention.to(picked[-1].dtype), out_size)
