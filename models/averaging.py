"""Weight blending of a continued network with the one it started from.

A student fine-tuned from its teacher at a low rate stays in the teacher's basin, where
the straight line between the two weight sets holds networks at least as good as either
end and often better (WiSE-FT, Wortsman et al. 2022; model soups, the same authors): an
ensemble's gain at a single network's inference cost. P-Net and the rounds continue the
supervised nets on noisy pseudo labels and on MSRC semi ended 0.01-0.03 val mIoU below
them; blending keeps what they learned and damps what the noise moved.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

State = Mapping[str, Mapping[str, Tensor]]


def blend_states(start: State, trained: State, share: float) -> dict[str, dict[str, Tensor]]:
    """``share`` of each trained float tensor plus ``1 - share`` of the starting one, per
    network; integer tensors (BatchNorm's batch counters) are the trained network's.

    BatchNorm running statistics blend like weights: both ends' statistics describe the
    same inputs through nearly the same trunk, and the blend is what the blended
    convolutions see to first order.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    out: dict[str, dict[str, Tensor]] = {}
    for net, tensors in trained.items():
        if start[net].keys() != tensors.keys():
            raise ValueError(f"{net}: the two states hold different tensors")
        out[net] = {
            name: (
                t.lerp(start[net][name].to(t), 1.0 - share) if t.is_floating_point() else t.clone()
            )
            for name, t in tensors.items()
        }
    return out
