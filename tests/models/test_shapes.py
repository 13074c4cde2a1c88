"""Forward/backward shape checks of every network, on CPU (and CUDA when present)."""

from __future__ import annotations

import pytest
import torch

from models.backbone import Encoder
from models.discriminator import Discriminator
from models.lnet import LNet
from models.pnet import PNet

SIZES = [(32, 32), (48, 40), (50, 64)]


def _backward_reaches_all(module: torch.nn.Module, output: torch.Tensor) -> bool:
    output.float().square().mean().backward()
    return all(p.grad is not None for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize("width,depth", [(4, 2), (8, 3), (8, 4)])
@pytest.mark.parametrize("height,width_px", SIZES)
def test_encoder_multiscale(width: int, depth: int, height: int, width_px: int) -> None:
    encoder = Encoder(width, depth)
    features = encoder(torch.randn(2, 3, height, width_px))
    assert len(features) == depth == len(encoder.out_channels)
    for f, channels, reduction in zip(
        features, encoder.out_channels, encoder.reductions, strict=True
    ):
        assert f.shape == (2, channels, -(-height // reduction), -(-width_px // reduction))


@pytest.mark.parametrize("num_classes", [1, 4])
@pytest.mark.parametrize("height,width_px", SIZES)
def test_lnet_cams_and_decoder(num_classes: int, height: int, width_px: int) -> None:
    lnet = LNet(num_classes, width=4, depth=3)
    images = torch.randn(2, 3, height, width_px)
    features = lnet.features(images)
    cams = lnet.cams(features)
    assert cams.shape == (2, num_classes, -(-height // 8), -(-width_px // 8))
    image_index = torch.tensor([0, 1, 1])
    class_index = torch.tensor([1, num_classes, 1])
    attention = LNet.attention(cams.detach(), image_index, class_index)
    assert attention.shape == (3, 1, *cams.shape[-2:])
    assert attention.min().item() >= 0 and attention.max().item() <= 1 + 1e-6
    logits = lnet.decode(features, image_index, attention, (height, width_px))
    assert logits.shape == (3, 2, height, width_px)
    assert _backward_reaches_all(lnet.decoder, logits)


@pytest.mark.parametrize("num_classes", [1, 5])
@pytest.mark.parametrize("height,width_px", SIZES)
def test_pnet_full_size_logits(num_classes: int, height: int, width_px: int) -> None:
    pnet = PNet(num_classes, width=4, depth=3)
    logits = pnet(torch.randn(1, 3, height, width_px))  # batch 1 must work in train mode
    assert logits.shape == (1, num_classes + 1, height, width_px)
    assert _backward_reaches_all(pnet, logits)


@pytest.mark.parametrize("height,width_px", SIZES)
def test_discriminator_per_pixel_map(height: int, width_px: int) -> None:
    disc = Discriminator(num_classes=3, width=4)
    probs = torch.softmax(torch.randn(2, 4, height, width_px), dim=1)
    out = disc(probs, torch.randn(2, 3, height, width_px))
    assert out.shape == (2, 1, height, width_px)
    assert _backward_reaches_all(disc, out)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_networks_under_autocast_channels_last() -> None:
    device = torch.device("cuda")
    pnet = PNet(4, width=8).to(device, memory_format=torch.channels_last)
    disc = Discriminator(4, width=8).to(device, memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.float16):
        logits = pnet(x)
        out = disc(torch.softmax(logits.float(), 1), x)
    assert logits.shape == (2, 5, 64, 64) and out.shape == (2, 1, 64, 64)
    assert torch.isfinite(out.float()).all()
