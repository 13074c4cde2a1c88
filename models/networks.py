"""Build the pipeline's networks from a config, placed on a device, optionally with weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from models.backbone import load_encoder_checkpoint
from models.config import PipelineConfig
from models.discriminator import Discriminator
from models.lnet import LNet
from models.pnet import PNet


def place(
    module: nn.Module,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> nn.Module:
    """Load ``state`` (else the configured encoder checkpoint, if any) and move to device."""
    if state is not None:
        module.load_state_dict(state)
    elif cfg.encoder_checkpoint and hasattr(module, "encoder"):
        load_encoder_checkpoint(module.encoder, cfg.encoder_checkpoint)
    module.to(device)
    if device.type == "cuda":
        module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module


def build_lnet(
    num_classes: int,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> LNet:
    lnet = LNet(num_classes, cfg.width, cfg.depth)
    place(lnet, cfg, device, state)
    return lnet


def build_segmenter(
    num_classes: int,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> PNet:
    segmenter = PNet(num_classes, cfg.width, cfg.depth)
    place(segmenter, cfg, device, state)
    return segmenter


def build_discriminator(
    num_classes: int,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> Discriminator:
    disc = Discriminator(num_classes, cfg.width)
    place(disc, cfg, device, state)
    return disc


def cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of the state_dict, safe to torch.save and to keep."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
