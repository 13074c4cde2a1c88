"""Compact from-scratch convolutional encoder with multi-scale outputs, and checkpoint loading."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn


def conv_bn_relu(
    in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """Conv → BatchNorm → ReLU with 'same' padding (halved size when stride is 2)."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut.

    Args:
        channels: input and output channels.

    Shape:
        (N, C, H, W) → (N, C, H, W)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.bn2(self.conv2(self.conv1(x))))


class Encoder(nn.Module):
    """Stack of stride-2 stages, each a downsampling conv and a residual block.

    Args:
        width: channels of the first stage; stage i has ``width * 2**i`` (at most 8x).
        depth: number of stages; stage i has stride ``2**(i + 1)``.
        in_channels: image channels.

    Shape:
        (N, in_channels, H, W) → list of ``depth`` tensors, the i-th
        (N, out_channels[i], ⌈H / 2**(i+1)⌉, ⌈W / 2**(i+1)⌉).
    """

    def __init__(self, width: int = 16, depth: int = 3, in_channels: int = 3) -> None:
        super().__init__()
        self.out_channels = tuple(width * 2 ** min(i, 3) for i in range(depth))
        self.reductions = tuple(2 ** (i + 1) for i in range(depth))
        stages = []
        previous = in_channels
        for channels in self.out_channels:
            stages.append(
                nn.Sequential(conv_bn_relu(previous, channels, stride=2), ResidualBlock(channels))
            )
            previous = channels
        self.stages = nn.ModuleList(stages)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def load_encoder_checkpoint(encoder: nn.Module, path: str | Path) -> None:
    """Load encoder weights from a file holding a state_dict, or a dict with "encoder"/"model".

    Keys may carry an ``encoder.`` prefix (a whole network's state_dict); then only those
    are used. Raises ValueError when the file cannot be read or keys or shapes do not match.
    """
    try:
        raw = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise ValueError(f"cannot read encoder checkpoint {str(path)!r}: {e}") from e
    state = fitted_state(encoder, _pick_state_dict(raw))
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs encoder {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched[:5]))
    if missing:
        problems.append(f"missing keys: {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected[:5])}")
    if problems:
        raise ValueError(
            f"encoder checkpoint {str(path)!r} does not fit this encoder "
            f"(width/depth?): " + " | ".join(problems)
        )
    encoder.load_state_dict(state, strict=True)


def fitted_state(encoder: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` as ``encoder`` holds it: a pretrained trunk's ``select`` drops what it does
    not hold (e.g. an ImageNet classifier, or L-Net's head features a segmenter lacks)."""
    select = getattr(encoder, "select", None)
    return dict(select(state) if callable(select) else state)


def _pick_state_dict(raw: object) -> dict[str, Tensor]:
    if isinstance(raw, Mapping):
        for key in ("encoder", "model"):
            if isinstance(raw.get(key), Mapping):
                raw = raw[key]
                break
    if (
        not isinstance(raw, Mapping)
        or not raw
        or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in raw.items())
    ):
        raise ValueError(
            "encoder checkpoint must be a state_dict of tensors, "
            "or a dict holding one under 'encoder' or 'model'"
        )
    if any(k.startswith("encoder.") for k in raw):
        return {k.removeprefix("encoder."): v for k, v in raw.items() if k.startswith("encoder.")}
    return dict(raw)
