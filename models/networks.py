"""Build the pipeline's networks from a config, placed on a device, optionally with weights."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from models.backbone import Encoder, load_encoder_checkpoint
from models.config import PipelineConfig
from models.discriminator import Discriminator
from models.efficientnet import EfficientNetLite0, load_imagenet
from models.lnet import LNet
from models.pnet import PNet


def build_encoder(cfg: PipelineConfig, *, head: bool, pretrained: bool) -> nn.Module:
    """The configured encoder; ``pretrained`` loads the ImageNet weights of a pretrained
    backbone (skipped when a saved state will replace them anyway).

    ``head``: L-Net's CAM head reads Lite0's 1280-channel head features, the segmenters
    the 320-channel last block (their context module widens it itself).
    """
    if cfg.backbone == "scratch":
        return Encoder(cfg.width, cfg.depth)
    # Stride 32 as trained: at stride 16 the dilated 5x5 depthwise convolutions of the last
    # stage doubled L-Net's CPU step (their backward dominates); the decoders restore detail
    # from the stride-4/8/16 features.
    trunk = EfficientNetLite0(output_stride=32, with_head=head, frozen_blocks=cfg.frozen_blocks)
    if pretrained:
        load_imagenet(trunk)
    return trunk


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


def _pretrained(cfg: PipelineConfig, state: Mapping[str, Tensor] | None) -> bool:
    return state is None and not cfg.encoder_checkpoint


def build_lnet(
    num_classes: int,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> LNet:
    encoder = build_encoder(cfg, head=True, pretrained=_pretrained(cfg, state))
    cam_scales = 1 if cfg.backbone == "scratch" else 2  # a stride-32 trunk: CAMs at 16
    lnet = LNet(num_classes, cfg.width, cfg.depth, encoder=encoder, cam_scales=cam_scales)
    place(lnet, cfg, device, state)
    return lnet


def build_segmenter(
    num_classes: int,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> PNet:
    encoder = build_encoder(cfg, head=False, pretrained=_pretrained(cfg, state))
    middle = 0 if cfg.backbone == "scratch" else len(encoder.out_channels) - 2
    segmenter = PNet(num_classes, cfg.width, cfg.depth, encoder=encoder, middle=middle)
    place(segmenter, cfg, device, state)
    return segmenter


def build_discriminator(
    num_classes: int,
    cfg: PipelineConfig,
    device: torch.device,
    state: Mapping[str, Tensor] | None = None,
) -> Discriminator:
    disc = Discriminator(num_classes, cfg.disc_width)
    place(disc, cfg, device, state)
    return disc


def param_groups(modules: Iterable[nn.Module], cfg: PipelineConfig) -> list[dict[str, Any]]:
    """AdamW groups: a pretrained encoder at ``lr · encoder_lr``, everything else at ``lr``
    (new heads need large steps, ImageNet features small ones). Frozen parameters are left
    out."""
    scale = 1.0 if cfg.backbone == "scratch" else cfg.encoder_lr
    encoder, heads = [], []
    for module in modules:
        for name, p in module.named_parameters():
            if p.requires_grad:
                (encoder if name.startswith("encoder.") else heads).append(p)
    groups = [{"params": heads, "lr": cfg.lr}]
    if encoder:
        groups.append({"params": encoder, "lr": cfg.lr * scale})
    return groups


def cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A detached CPU copy of the state_dict, safe to torch.save and to keep."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
