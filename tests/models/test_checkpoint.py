"""load_encoder_checkpoint: the forms a user's file may take; clear errors when it does not fit."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.backbone import Encoder, load_encoder_checkpoint
from models.lnet import LNet


def _same_outputs(a: Encoder, b: Encoder) -> bool:
    a.eval()
    b.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return all(torch.equal(fa, fb) for fa, fb in zip(a(x), b(x), strict=True))


def _trained_encoder() -> Encoder:
    torch.manual_seed(1)
    encoder = Encoder(width=8, depth=3)
    encoder.train()
    with torch.no_grad():
        encoder(torch.randn(4, 3, 32, 32))  # move BatchNorm running statistics off defaults
    return encoder


@pytest.mark.parametrize("form", ["state_dict", "encoder_key", "model_key", "whole_network"])
def test_loaded_encoder_gives_identical_outputs(tmp_path: Path, form: str) -> None:
    source = _trained_encoder()
    if form == "state_dict":
        payload: object = source.state_dict()
    elif form == "encoder_key":
        payload = {"encoder": source.state_dict(), "epoch": 3}
    elif form == "model_key":
        payload = {"model": source.state_dict()}
    else:
        lnet = LNet(num_classes=3, width=8, depth=3)
        lnet.encoder.load_state_dict(source.state_dict())
        payload = lnet.state_dict()  # keys carry the "encoder." prefix
    path = tmp_path / "encoder.pt"
    torch.save(payload, path)
    torch.manual_seed(2)
    target = Encoder(width=8, depth=3)
    assert not _same_outputs(source, target)
    load_encoder_checkpoint(target, path)
    assert _same_outputs(source, target)


def test_mismatched_width_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt"
    torch.save(Encoder(width=16, depth=3).state_dict(), path)
    with pytest.raises(ValueError, match="shape mismatch"):
        load_encoder_checkpoint(Encoder(width=8, depth=3), path)


def test_missing_stage_raises_value_error(tmp_path: Path) -> None:
    path = tmp_path / "shallow.pt"
    torch.save(Encoder(width=8, depth=2).state_dict(), path)
    with pytest.raises(ValueError, match="missing keys"):
        load_encoder_checkpoint(Encoder(width=8, depth=3), path)


@pytest.mark.parametrize("content", [b"not a checkpoint", None])
def test_unreadable_file_raises_value_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.pt"
    if content is None:
        torch.save({"weights": [1, 2, 3]}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError):
        load_encoder_checkpoint(Encoder(width=8, depth=3), path)
