"""Blending a continued network with its start (models.averaging, ``student_blend``):
exact arithmetic, wiring into the segmenter stages, and blended nets that still label
held-out images well."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.averaging import blend_states
from models.self_training import SegmenterNets
from tests.models.segmenter_probe import held_out_miou, probe_context, train_probe


def _net_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.train()
    net(torch.randn(2, 3, 8, 8) * seed)  # running statistics and a batch counter move
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_blend_is_the_weighted_mean_and_counters_are_the_trained_nets() -> None:
    start, trained = {"s": _net_state(1)}, {"s": _net_state(2)}
    trained["s"]["1.num_batches_tracked"] += 5
    out = blend_states(start, trained, 0.25)["s"]
    for name, t in trained["s"].items():
        if t.is_floating_point():
            assert torch.allclose(out[name], 0.25 * t + 0.75 * start["s"][name])
        else:
            assert torch.equal(out[name], t)
    assert all(
        torch.equal(blend_states(start, trained, 1.0)["s"][k], v) for k, v in trained["s"].items()
    )
    assert all(
        torch.allclose(blend_states(start, trained, 0.0)["s"][k], v.to(out[k].dtype))
        for k, v in start["s"].items()
        if v.is_floating_point()
    )


def test_mismatched_states_and_shares_out_of_range_are_refused() -> None:
    a = {"s": _net_state(1)}
    b = {"s": {k: v for k, v in _net_state(2).items() if k != "0.bias"}}
    with pytest.raises(ValueError, match="different tensors"):
        blend_states(a, b, 0.5)
    with pytest.raises(ValueError, match="share"):
        blend_states(a, a, 1.5)


def test_continued_segmenters_end_midway_and_still_label_unseen_images() -> None:
    """P-Net-like continuation: nets trained on the probe continue for two more epochs at
    student_blend 1 and 0.5 from the same start; the blended weights are the midpoint of
    the start and the unblended end, and both label the held-out images."""
    ctx, pseudo, weight = probe_context()
    nets = SegmenterNets.build(ctx, seed=0)
    train_probe(ctx, nets, pseudo, weight)
    start = nets.state()
    before = held_out_miou(ctx, nets)

    ends = {}
    for share in (1.0, 0.5):
        ctx_share, _, _ = probe_context(student_blend=share)
        continued = SegmenterNets.build(ctx_share, start)
        train_probe(ctx_share, continued, pseudo, weight, epochs=2, continued=True)
        ends[share] = continued
    full, half = ends[1.0].state(), ends[0.5].state()
    for net in ("s_a", "s_b", "disc"):
        for name, t in full[net].items():
            if t.is_floating_point():
                expected = 0.5 * t + 0.5 * start[net][name]
                assert torch.allclose(half[net][name], expected, atol=1e-5), (net, name)
    blended = held_out_miou(ctx, ends[0.5])
    print(
        f"\nheld-out mIoU: start {before:.3f}, continued {held_out_miou(ctx, ends[1.0]):.3f}, "
        f"blended {blended:.3f}"
    )
    assert blended >= 0.6
