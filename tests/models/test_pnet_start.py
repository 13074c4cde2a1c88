"""P-Net after a supervised stage (``pnet_start``): continue the teacher's nets, or train
fresh ones on the teacher's pseudo labels (Noisy Student / ST++)."""

from __future__ import annotations

from typing import Any

import torch

from models.self_training import SegmenterNets
from models.stages import pnet_stage
from tests.models.segmenter_probe import probe_context, train_probe


def _teacher_state(knobs: dict[str, Any], trained: bool) -> dict[str, Any]:
    """A supervised stage's output on the probe: its nets (trained on the probe, or left
    as built from another seed) and the perfect teacher's filtered labels."""
    ctx, pseudo, weight = probe_context(**knobs)
    nets = SegmenterNets.build(ctx, seed=0 if trained else 7)
    if trained:
        train_probe(ctx, nets, pseudo, weight, epochs=4)
    return {**nets.state(), "labels": pseudo, "pseudo": pseudo, "weight": weight}


def _pnet(knobs: dict[str, Any], teacher: dict[str, Any]) -> dict[str, Any]:
    ctx, pseudo, _ = probe_context(**knobs)
    lnet = {"coarse": pseudo, "cam": pseudo}
    return pnet_stage(ctx, lnet, teacher, lambda f, m: None, lambda: False)


def test_a_fresh_student_learns_from_labels_alone_and_a_continued_one_from_its_teacher() -> None:
    """Two teachers with the same labels and different weights: a fresh P-Net ends the
    same after either (only the labels reach it) and labels held-out images well; a
    continued one ends differently."""
    fresh = {
        "pnet_start": "fresh",
        "epochs_pnet": 8,
        "continue_lr": 0.25,
        "segmenter_init": "scratch",
    }
    continued = {**fresh, "pnet_start": "continue"}
    trained, untrained = _teacher_state(fresh, True), _teacher_state(fresh, False)

    after_trained, after_untrained = _pnet(fresh, trained), _pnet(fresh, untrained)
    for net in ("s_a", "s_b", "disc"):
        for name, t in after_trained[net].items():
            assert torch.equal(t, after_untrained[net][name]), (net, name)
    miou = after_trained["metrics"]["pnet"]["miou"]
    print(f"\nfresh P-Net held-out mIoU {miou:.3f}")
    assert miou >= 0.6

    a, b = _pnet(continued, trained), _pnet(continued, untrained)
    assert any(not torch.equal(t, b["s_a"][name]) for name, t in a["s_a"].items())


def test_a_relay_trains_a_fresh_student_then_continues_the_teacher_on_its_labels() -> None:
    """pnet_start=relay: a fresh student (the same whatever the teacher's weights) labels
    the targets; its filtered labels teach a student that continues the teacher's nets,
    which learns the probe (held-out mIoU) and differs from a plain continued student."""
    relay = {
        "pnet_start": "relay",
        "epochs_pnet": 8,
        "continue_lr": 0.25,
        "segmenter_init": "scratch",
    }
    trained, untrained = _teacher_state(relay, True), _teacher_state(relay, False)
    after_trained, after_untrained = _pnet(relay, trained), _pnet(relay, untrained)
    first, final = (after_trained["metrics"][k]["miou"] for k in ("pnet_fresh", "pnet"))
    print(f"\nrelay: fresh student {first:.3f}, continued student {final:.3f}")
    assert first == after_untrained["metrics"]["pnet_fresh"]["miou"]
    assert final >= 0.6
    assert final != after_untrained["metrics"]["pnet"]["miou"]
    continued = _pnet({**relay, "pnet_start": "continue"}, trained)
    print(f"continued on the teacher's own labels {continued['metrics']['pnet']['miou']:.3f}")
    assert any(
        not torch.equal(t, continued["s_a"][name]) for name, t in after_trained["s_a"].items()
    )
