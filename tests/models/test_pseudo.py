"""Pseudo-labels: tag constraint, flip averaging, per-class thresholds, confident argmax."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.pseudo import (
    allowed_classes,
    apply_thresholds,
    class_thresholds,
    confident_labels,
    constrain,
    flip_average,
    fuse_labels,
    named_classes,
)


def test_allowed_classes_with_and_without_background() -> None:
    tags = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    with_bg = allowed_classes(tags, has_background=True)
    assert with_bg.tolist() == [[True, True, False, True], [True, False, False, False]]
    without = allowed_classes(tags, has_background=False)
    # nothing tagged and no background: nothing to constrain with, so everything is allowed
    assert without.tolist() == [[False, True, False, True], [True, True, True, True]]


def test_constrained_argmax_stays_in_tags() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 5, 8, 8) * 5
    tags = (torch.rand(6, 4) > 0.5).float()
    tags[:, 0] = 1.0  # at least one tag per image
    for has_background in (True, False):
        allowed = allowed_classes(tags, has_background)
        labels = torch.softmax(constrain(logits, allowed), 1).argmax(1)
        for i in range(6):
            assert set(labels[i].unique().tolist()) <= set(allowed[i].nonzero().flatten().tolist())
        if not has_background:
            assert not (labels == 0).any()


class _Asymmetric(nn.Module):
    """A deliberately not flip-equivariant model: logits depend on the column index."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0, 3, x.shape[-1]).expand_as(x[:, 0])
        return torch.stack([x[:, 0], x[:, 1] + ramp, -ramp], dim=1)


def _flip_averaged(model: torch.nn.Module, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    return flip_average(model(x), model(x.flip(-1)), allowed)


def test_flip_averaging_is_mean_of_mirrored_passes_and_symmetric() -> None:
    model = _Asymmetric()
    x = torch.randn(2, 3, 4, 6)
    allowed = torch.ones(2, 3, dtype=torch.bool)
    probs = _flip_averaged(model, x, allowed)
    expected = (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(-1)), 1).flip(-1)) / 2
    torch.testing.assert_close(probs, expected)
    # flip-averaged prediction of a mirrored image is the mirrored prediction
    torch.testing.assert_close(_flip_averaged(model, x.flip(-1), allowed), probs.flip(-1))
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 4, 6))


def test_flip_averaging_respects_tags() -> None:
    allowed = torch.tensor([[False, True, True], [True, False, True]])
    probs = _flip_averaged(_Asymmetric(), torch.randn(2, 3, 4, 6), allowed)
    assert probs[0, 0].abs().max() == 0 and probs[1, 1].abs().max() == 0


def test_per_class_thresholds_are_quantiles_clipped() -> None:
    # class 1 confidences 0.1..1.0, class 2 all very sure, class 3 absent, 255 skipped
    confidence = torch.cat(
        [torch.linspace(0.1, 1.0, 10), torch.full((5,), 0.99), torch.tensor([0.0])]
    )
    labels = torch.tensor([1] * 10 + [2] * 5 + [255])
    taus = class_thresholds(confidence, labels, 4, quantile=0.3, tau_min=0.2, tau_max=0.9)
    assert taus[1].item() == torch.linspace(0.1, 1.0, 10)[3].item()  # 30 % quantile = 0.4
    assert taus[2].item() == pytest.approx(0.9)  # clipped to tau_max
    assert taus[0].item() == taus[3].item() == pytest.approx(0.2)  # no pixel: tau_min


def test_low_confidence_pixels_become_255() -> None:
    labels = torch.tensor([[1, 1, 2, 2, 255]], dtype=torch.uint8)
    confidence = torch.tensor([[0.3, 0.8, 0.5, 0.7, 0.99]])
    taus = torch.tensor([0.5, 0.6, 0.6])
    out = apply_thresholds(labels, confidence, taus)
    assert out.tolist() == [[255, 1, 255, 2, 255]]
    assert out.dtype == torch.uint8
    # a rare class with a low threshold keeps its pixels where a global one would not
    rare = apply_thresholds(labels, confidence, torch.tensor([0.5, 0.25, 0.6]))
    assert rare.tolist()[0][0] == 1


def test_confident_labels() -> None:
    probs = torch.tensor([[[[0.9, 0.4]], [[0.1, 0.6]]]])  # (1, 2, 1, 2)
    out = confident_labels(probs, torch.tensor([0.5, 0.7]))
    assert out.tolist() == [[[0, 255]]]
    out = confident_labels(probs, torch.tensor([0.5, 0.5]), valid=torch.tensor([[[False, True]]]))
    assert out.tolist() == [[[255, 1]]]


def test_fused_labels_take_supervised_strong_and_lnet_weak() -> None:
    """Strong classes (1, 2) come from the supervised map unless L-Net says weak (3);
    L-Net's label stands where the supervised map holds an untaught class."""
    coarse = torch.tensor([[[1, 3, 255, 2, 255]]], dtype=torch.uint8)
    supervised = torch.tensor([[[2, 1, 1, 3, 255]]], dtype=torch.uint8)
    fused = fuse_labels(coarse, supervised, [1, 2])
    assert fused.tolist() == [[[2, 3, 1, 2, 255]]]
    assert fused.dtype == torch.uint8


def test_fused_labels_take_the_teacher_where_taught_and_lnet_where_it_never_was() -> None:
    """weak_source=teacher: the supervised map wins wherever it names a taught class (the
    weak category 3 included once partial masks taught it), but not where L-Net names the
    category 4 no mask taught: the teacher cannot name it. L-Net fills the rest."""
    coarse = torch.tensor([[[1, 3, 255, 2, 3, 4, 4]]], dtype=torch.uint8)
    supervised = torch.tensor([[[2, 1, 1, 3, 4, 3, 255]]], dtype=torch.uint8)
    fused = fuse_labels(coarse, supervised, [1, 2, 3])
    assert fused.tolist() == [[[2, 1, 1, 3, 3, 4, 4]]]


def test_a_teacher_is_taught_only_the_weak_categories_it_names() -> None:
    """Weak category 3: the transferred labels give it 4 pixels, the teacher names it on 2
    (elsewhere); 4: given 10, named on none (the teacher calls them 2); 5 is never
    transferred. 4 leaves the teacher's classes, so the transferred labels win on it."""
    coarse = torch.tensor([[[3, 3, 3, 3] + [4] * 10 + [2, 2]]], dtype=torch.uint8)
    teacher = torch.tensor([[[1, 1, 1, 1] + [2] * 10 + [3, 3]]], dtype=torch.uint8)
    assert named_classes(coarse, teacher, [1, 2, 3, 4, 5], [3, 4, 5]) == [1, 2, 3, 5]
    # strong categories stay whatever the teacher says
    assert named_classes(coarse, teacher, [1, 4], []) == [1, 4]
    fused = fuse_labels(coarse, teacher, named_classes(coarse, teacher, [1, 2, 3, 4], [3, 4]))
    assert fused[0, 0, 4:14].tolist() == [4] * 10
    assert fused[0, 0, :4].tolist() == [1, 1, 1, 1]
    assert fused[0, 0, 14:].tolist() == [3, 3]
